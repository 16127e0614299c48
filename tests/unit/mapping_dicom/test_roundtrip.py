"""DICOM worklist item → FHIR transaction Bundle → DICOM worklist item, on the DCMTK examples.

Known losses (documented in docs/dicom-conformance.md): LOW/MEDIUM priorities become ROUTINE;
Medical Alerts, Allergies, Requested Contrast Agent and Pre-Medication have no home in the
resource model yet.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset
from tests.conftest import require_corpus

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    build_worklist_item_result,
    graphs_from_bundle,
    worklist_item_to_fhir,
)
from fhirmwl.worklist.values import element_strings

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "mwl"
TOP = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber")
TOP += ("StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription")
TOP += ("RequestingPhysician",)
SPS = ("Modality", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime")
SPS += ("ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription")
SPS += ("ScheduledProcedureStepID", "ScheduledStationName", "ScheduledProcedureStepLocation")


def _ctx() -> DicomMappingContext:
    counter = itertools.count(1)
    return DicomMappingContext(
        timezone=ZoneInfo("Europe/Berlin"), new_uuid=lambda: uuid.UUID(int=next(counter))
    )


def _values(ds: Dataset, keyword: str) -> list[str]:
    return element_strings(ds.data_element(keyword)) if keyword in ds else []


@pytest.mark.parametrize("number", range(1, 11))
def test_dcmtk_item_roundtrip(number: int) -> None:
    path = CORPUS / f"dcmtk_wklist{number}.dump"
    require_corpus(path)
    original = read_worklist_file(path)
    bundle = worklist_item_to_fhir(original, _ctx())
    assert bundle["type"] == "transaction"
    types = sorted({e["resource"]["resourceType"] for e in bundle["entry"]})
    assert {"Patient", "ServiceRequest", "Task", "Device", "ImagingStudy"} <= set(types)
    patient_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient_entry["request"]["ifNoneExist"].endswith("|" + str(original.PatientID))
    (graph,) = graphs_from_bundle(bundle)
    result = build_worklist_item_result(graph, _ctx())
    assert result.reason is None
    rebuilt = result.dataset
    assert rebuilt is not None
    for keyword in TOP:
        assert _values(rebuilt, keyword) == _values(original, keyword), keyword
    old_sps = original.ScheduledProcedureStepSequence[0]
    new_sps = rebuilt.ScheduledProcedureStepSequence[0]
    for keyword in SPS:
        assert _values(new_sps, keyword) == _values(old_sps, keyword), keyword
    assert _values(new_sps, "ScheduledStationAETitle") == _values(
        old_sps, "ScheduledStationAETitle"
    )
