"""The modality ValueSet is DICOM PS3.16 CID 33 of a named edition (via pydicom's CID tables),
plus SC; a newer pydicom (another edition) makes this test ask for a regeneration."""

from __future__ import annotations

from pydicom import _version

from fhirmwl.conformance import registry
from fhirmwl.conformance.defs_terminology import CID_33, CID_33_EDITION


def test_cid33_edition_matches_pydicom() -> None:
    assert _version.__concepts_version__ == CID_33_EDITION
    vs = registry.get("ValueSet", "dicom-cid-33-modality")
    assert vs is not None and CID_33_EDITION in vs["description"]
    codes = {c["code"] for c in vs["compose"]["include"][0]["concept"]}
    assert codes == set(CID_33)
    assert {"CT", "MR", "SEG", "RTSTRUCT", "OT", "SC"} <= codes
    assert "A999" not in codes and "RAD" not in codes
