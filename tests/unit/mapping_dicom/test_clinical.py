"""Clinical content of the worklist item both ways: HL7 v2 → FHIR → DICOM (AL1, OBX, PV1-15,
OBR-12/13 → AllergyIntolerance, Observation, Flag → (0010,2110), (0010,1030), (0010,1020),
(0010,21C0), (0010,2000), (0038,0500)), the FHIR selection rules, and DICOM → FHIR → DICOM for
the Patient Medical and SPS attributes of an imported item."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset

from fhirmwl.fhir.model import LOINC, SNOMED, SPECIAL_NEEDS_CATEGORY
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    WorklistGraph,
    build_worklist_item_result,
    graphs_from_bundle,
    worklist_item_to_fhir,
)
from fhirmwl.mapping.fhir_to_dicom.clinical import add_clinical
from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate

GOLDEN_V2 = Path(__file__).parents[1] / "mapping_v2" / "golden" / "omi_clinical.hl7"
PATIENT = {"reference": "Patient/p1"}
NEEDS = SPECIAL_NEEDS_CATEGORY


def _dicom_ctx() -> DicomMappingContext:
    counter = itertools.count(1)
    return DicomMappingContext(
        timezone=ZoneInfo("Europe/Berlin"), new_uuid=lambda: uuid.UUID(int=next(counter))
    )


def v2_graph(path: Path) -> WorklistGraph:
    """The worklist graph an HL7 v2 golden message maps to (fixed clock and UUIDs)."""
    counter = itertools.count(1)
    ctx = MappingContext(
        clock=lambda: datetime(2025, 1, 1, 12, tzinfo=UTC),
        new_uuid=lambda: uuid.UUID(int=next(counter)),
        timezone="Europe/Berlin",
    )
    result = evaluate(path.read_bytes(), ctx, control_id="ACK1")
    assert result.ack_code == "AA" and result.mapped is not None
    (graph,) = graphs_from_bundle(result.mapped.bundle)
    return graph


def test_v2_to_fhir_to_dicom() -> None:
    graph = v2_graph(GOLDEN_V2)
    item = build_worklist_item_result(graph, _dicom_ctx()).dataset
    assert item is not None
    assert list(item.Allergies) == ["Iodinated contrast media", "Peanut"]  # AL1-3
    assert item.MedicalAlerts == "Metal implant left hip"  # OBR-13
    assert item.PatientState == "Isolation required"  # OBR-12
    assert str(item.PatientWeight) == "72.5"  # OBX 29463-7, kg
    assert str(item.PatientSize) == "1.68"  # OBX 8302-2, cm → m
    assert item.PregnancyStatus == 3  # PV1-15 B6: definitely pregnant


def _obs(code: str, when: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": PATIENT,
        "effectiveDateTime": when,
        **value,
    }


def test_fhir_selection_rules() -> None:
    resources = [
        {"resourceType": "AllergyIntolerance", "patient": PATIENT, "code": {"text": "Iodine"}},
        {
            "resourceType": "AllergyIntolerance",
            "patient": PATIENT,
            "code": {"text": "Latex"},
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
        },
        {
            "resourceType": "AllergyIntolerance",
            "patient": PATIENT,
            "code": {"coding": [{"code": "X", "display": "Penicillin"}]},
            "verificationStatus": {"coding": [{"code": "refuted"}]},
        },
        {"resourceType": "Flag", "status": "active", "subject": PATIENT, "code": {"text": "MRSA"}},
        {"resourceType": "Flag", "status": "inactive", "subject": PATIENT, "code": {"text": "Old"}},
        {
            "resourceType": "Flag",
            "status": "active",
            "subject": PATIENT,
            "code": {"text": "Wheelchair"},
            "category": [{"coding": [{"system": NEEDS[0], "code": NEEDS[1]}]}],
        },
        _obs("29463-7", "2025-01-01", valueQuantity={"value": 80000, "code": "g"}),
        _obs("29463-7", "2025-02-01", valueQuantity={"value": 81.5, "code": "kg"}),
        _obs("8302-2", "2025-01-01", valueQuantity={"value": 70, "code": "[in_i]"}),
        _obs(
            "82810-3",
            "2025-01-01",
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "102874004"}]},
        ),
    ]
    ds = Dataset()
    add_clinical(ds, resources)
    assert ds.Allergies == "Iodine"
    assert ds.MedicalAlerts == "MRSA"
    assert ds.SpecialNeeds == "Wheelchair"
    assert str(ds.PatientWeight) == "81.5"  # the latest observation
    assert str(ds.PatientSize) == "1.778"
    assert ds.PregnancyStatus == 2  # possibly pregnant


def _imported_item() -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID = "ROSSI^MARIA", "PAT030"
    ds.AccessionNumber, ds.StudyInstanceUID = "ACC030", "1.2.3.4.30"
    ds.RequestedProcedureID, ds.RequestedProcedureDescription = "RP030", "CT abdomen"
    ds.MedicalAlerts = ["DIABETES", "PACEMAKER"]
    ds.Allergies = "IODINE"
    ds.PregnancyStatus = 4
    ds.PatientWeight, ds.PatientSize = "72.5", "1.68"
    ds.PatientState, ds.SpecialNeeds = "FASTING", "WHEELCHAIR"
    sps = Dataset()
    sps.ScheduledStationAETitle, sps.Modality = "CT01", "CT"
    sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime = "20250102", "0900"
    sps.ScheduledProcedureStepEndDate, sps.ScheduledProcedureStepEndTime = "20250102", "0930"
    sps.ScheduledProcedureStepID, sps.ScheduledProcedureStepDescription = "SPS030", "CT abd"
    sps.RequestedContrastAgent, sps.PreMedication = "IOPAMIDOL 300", "PREDNISOLONE"
    sps.CommentsOnTheScheduledProcedureStep = "Drink 1 l water"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _rebuild(bundle: dict[str, Any]) -> Dataset:
    (graph,) = graphs_from_bundle(bundle)
    item = build_worklist_item_result(graph, _dicom_ctx()).dataset
    assert item is not None
    return item


def test_dicom_to_fhir_to_dicom_keeps_clinical_attributes() -> None:
    original = _imported_item()
    bundle = worklist_item_to_fhir(original, _dicom_ctx())
    task = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")
    assert task["note"] == [{"text": "Drink 1 l water"}]  # (0040,0400) has a FHIR home
    assert task["requestedPeriod"]["end"] == "2025-01-02T09:30:00+01:00"
    item = _rebuild(bundle)
    for keyword in ("MedicalAlerts", "Allergies", "PregnancyStatus", "PatientState"):
        assert item[keyword].value == original[keyword].value, keyword
    assert (str(item.PatientWeight), str(item.PatientSize)) == ("72.5", "1.68")
    sps, old = item.ScheduledProcedureStepSequence[0], original.ScheduledProcedureStepSequence[0]
    for keyword in (
        "RequestedContrastAgent",
        "PreMedication",
        "CommentsOnTheScheduledProcedureStep",
        "ScheduledProcedureStepEndDate",
        "ScheduledProcedureStepEndTime",
    ):
        assert sps[keyword].value == old[keyword].value, keyword


@pytest.mark.parametrize("status", ["active", None])
def test_fhir_allergy_recorded_after_import_wins(status: str | None) -> None:
    """The imported per-item value stands until FHIR has allergies for the patient."""
    bundle = worklist_item_to_fhir(_imported_item(), _dicom_ctx())
    patient_url = next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": patient_url},
        "code": {"text": "Gadolinium"},
    }
    if status:
        allergy["clinicalStatus"] = {"coding": [{"code": status}]}
    bundle["entry"].append({"fullUrl": "urn:uuid:allergy", "resource": allergy})
    assert _rebuild(bundle).Allergies == "Gadolinium"
