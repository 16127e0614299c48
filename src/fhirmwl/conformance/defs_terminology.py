"""Terminology we publish: the identifier-type CodeSystem (I-7) and the CID 33 ValueSet (I-10).

The draft guide binds the modality input to an ``ftp://`` file, which is not a canonical; we
ship our own ValueSet composed from DCM codes so the required binding can be checked offline.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import VS_MODALITY, meta
from fhirmwl.fhir.model import DCM, ID_TYPE_SYSTEM


# DICOM PS3.16 CID 33 "Modality" (DCM code → code meaning), read from the CID tables pydicom
# ships (``pydicom.sr.codedict``, generated from the DICOM edition in
# ``pydicom._version.__concepts_version__``: 2024c for pydicom 3.0.2) instead of typed by hand.
# One local addition: SC (Secondary Capture), a Defined Term of Modality (0008,0060) in PS3.3
# C.7.3.1.1.1 that CID 33 does not list, because sites schedule it.
def _cid_33() -> dict[str, str]:
    from pydicom.sr.codedict import codes

    found = {
        c.value: c.meaning for c in codes.cid33.concepts.values() if c.scheme_designator == "DCM"
    }
    return dict(sorted({**found, "SC": "Secondary Capture"}.items()))


CID_33: dict[str, str] = _cid_33()
CID_33_EDITION = "2024c"  # pydicom._version.__concepts_version__ (checked by a unit test)


def identifier_type_codesystem() -> dict[str, Any]:
    cs = meta(
        "CodeSystem",
        "imaging-identifier-type",
        "ImagingIdentifierType",
        "Imaging Identifier Type",
        "Identifier types for DICOM identifiers that v2-0203 has no code for (I-7).",
    )
    cs["url"] = ID_TYPE_SYSTEM
    cs.update(
        {
            "caseSensitive": True,
            "content": "complete",
            "count": 2,
            "concept": [
                {
                    "code": "RPID",
                    "display": "Requested Procedure ID",
                    "definition": "DICOM Requested Procedure ID (0040,1001).",
                },
                {
                    "code": "SPSID",
                    "display": "Scheduled Procedure Step ID",
                    "definition": "DICOM Scheduled Procedure Step ID (0040,0009).",
                },
            ],
        }
    )
    return cs


def modality_valueset() -> dict[str, Any]:
    vs = meta(
        "ValueSet",
        "dicom-cid-33-modality",
        "DicomCid33Modality",
        "DICOM CID 33 Modality",
        f"Modality codes of DICOM PS3.16 CID 33 (edition {CID_33_EDITION}), from the DCM code "
        "system, plus SC (Secondary Capture, a Defined Term of Modality (0008,0060)).",
    )
    vs["url"] = VS_MODALITY
    concepts = [{"code": code, "display": display} for code, display in CID_33.items()]
    vs["compose"] = {"include": [{"system": DCM, "concept": concepts}]}
    return vs


def terminology_resources() -> list[dict[str, Any]]:
    return [identifier_type_codesystem(), modality_valueset()]
