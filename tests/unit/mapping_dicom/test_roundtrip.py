"""DICOM worklist item → FHIR transaction Bundle → DICOM worklist item, on the corpus items.

Every attribute of the original comes back with its value (lossless import): what the resource
model has no home for (LOW/MEDIUM priorities, a site's own attributes, private elements …) is
kept on the Task (``mapping/fhir_to_dicom/residual.py``) and re-emitted — until FHIR changes the
attribute, then FHIR wins. Orthanc's sparse veterinary items lack type 1 attributes (Requested
Procedure ID, SPS ID) and are not offered at all, as ``wlmscpfs`` ignores them too.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.fhir.model import DICOM_ATTRIBUTES_EXT
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    build_worklist_item_result,
    graphs_from_bundle,
    worklist_item_to_fhir,
)
from fhirmwl.worklist.jsoncodec import dataset_to_dict

COMPLETE_ITEMS = [f"dcmtk_wklist{n}.dump" for n in range(1, 11)] + [
    "orthanc_private-creator.dump",
    "orthanc_dcmtk360_wklist4_invalid-birthdate.dump",
    "orthancdemo_MWL_TEST.wl",
]
SPARSE_ITEMS = ["orthanc_vet_7705.dump", "orthanc_vet_7814.dump", "orthanc_issue49-latin1.wl"]


def _ctx() -> DicomMappingContext:
    counter = itertools.count(1)
    return DicomMappingContext(
        timezone=ZoneInfo("Europe/Berlin"), new_uuid=lambda: uuid.UUID(int=next(counter))
    )


def _rebuilt(bundle: dict[str, Any]) -> Dataset | None:
    (graph,) = graphs_from_bundle(bundle)
    return build_worklist_item_result(graph, _ctx()).dataset


def assert_every_attribute_kept(original: Dataset, rebuilt: Dataset) -> None:
    """Every attribute of ``original`` (top level and in its SPS item) is in ``rebuilt`` with
    the same value; the Specific Character Set is the answer's, not the item's."""
    old, new = dataset_to_dict(original), dataset_to_dict(rebuilt)
    old_sps = old.pop("00400100")["Value"][0]
    new_sps = new.pop("00400100")["Value"][0]
    for tag, entry in old.items():
        if tag != "00080005":
            assert new.get(tag, {}).get("Value") == entry.get("Value"), tag
    for tag, entry in old_sps.items():
        assert new_sps.get(tag, {}).get("Value") == entry.get("Value"), f"SPS {tag}"


@pytest.mark.parametrize("name", COMPLETE_ITEMS)
def test_every_attribute_survives_the_round_trip(mwl_corpus: Path, name: str) -> None:
    original = read_worklist_file(mwl_corpus / name)
    bundle = worklist_item_to_fhir(original, _ctx())
    assert bundle["type"] == "transaction"
    types = sorted({e["resource"]["resourceType"] for e in bundle["entry"]})
    assert {"Patient", "ServiceRequest", "Task", "Device", "ImagingStudy"} <= set(types)
    patient_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient_entry["request"]["ifNoneExist"].endswith("|" + str(original.PatientID))
    rebuilt = _rebuilt(bundle)
    assert rebuilt is not None
    assert_every_attribute_kept(original, rebuilt)


def _task(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")


def test_kept_attributes_yield_to_later_fhir_changes(mwl_corpus: Path) -> None:
    original = read_worklist_file(mwl_corpus / "dcmtk_wklist1.dump")  # LOW priority
    bundle = worklist_item_to_fhir(original, _ctx())
    assert any(e["url"] == DICOM_ATTRIBUTES_EXT for e in _task(bundle)["extension"])
    rebuilt = _rebuilt(bundle)
    assert rebuilt is not None and rebuilt.RequestedProcedurePriority == "LOW"
    rp = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "ServiceRequest" and "basedOn" in e["resource"]
    )
    rp["priority"] = "stat"  # the order changes after the import
    changed = _rebuilt(bundle)
    assert changed is not None and changed.RequestedProcedurePriority == "STAT"


@pytest.mark.parametrize("name", SPARSE_ITEMS)
def test_sparse_items_are_kept_but_not_offered(mwl_corpus: Path, name: str) -> None:
    bundle = worklist_item_to_fhir(read_worklist_file(mwl_corpus / name), _ctx())
    (graph,) = graphs_from_bundle(bundle)
    result = build_worklist_item_result(graph, _ctx())
    assert result.dataset is None and result.reason == "missing Requested Procedure ID"
    assert any(e["url"] == DICOM_ATTRIBUTES_EXT for e in _task(bundle)["extension"])
