"""FHIR graph → worklist item: names with component groups, local time zone, sex, issuers,
coded sequences, type 2 present-but-empty, type 1 never empty, Task.status policy."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhirmwl.fhir.model import ACSN, DCM, DCM_MODALITY_CODE, MR, RPID, SPSID, typed_identifier
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    WorklistGraph,
    build_worklist_item,
    build_worklist_item_result,
)
from fhirmwl.mapping.fhir_to_dicom.datatypes import (
    EN_REPRESENTATION,
    human_names_to_pn,
    local_da_tm,
    pn_to_human_names,
)

CTX = DicomMappingContext(timezone=ZoneInfo("Asia/Tokyo"))


def _ext(code: str) -> list[dict[str, str]]:
    return [{"url": EN_REPRESENTATION, "valueCode": code}]


def graph(**task_changes: Any) -> WorklistGraph:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:1.2.392.1", "value": "X9"},
            typed_identifier(MR, "P123", "urn:oid:1.2.392.200"),
        ],
        "name": [
            {"use": "official", "family": "Yamada", "given": ["Tarou"]},
            {"use": "official", "family": "山田", "given": ["太郎"], "extension": _ext("IDE")},
            {"use": "official", "family": "やまだ", "given": ["たろう"], "extension": _ext("SYL")},
        ],
        "gender": "male",
        "birthDate": "1970-01-02",
    }
    task = {
        "resourceType": "Task",
        "status": "requested",
        "identifier": [typed_identifier(SPSID, "SPS1")],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "77477000"}]},
        "requestedPeriod": {"start": "2024-07-05T15:30:00Z"},
        "input": [
            {
                "type": {"coding": [{"system": DCM, "code": DCM_MODALITY_CODE}]},
                "valueCodeableConcept": {"coding": [{"system": DCM, "code": "CT"}]},
            }
        ],
        "requestedPerformer": [{"reference": {"reference": "Device/ct1"}}],
        "owner": {"reference": "Practitioner/p1"},
        **task_changes,
    }
    return WorklistGraph(
        task=task,
        requested_procedure={
            "identifier": [typed_identifier(RPID, "RP1")],
            "code": {"concept": {"text": "CT head", "coding": [{"system": DCM, "code": "X"}]}},
            "priority": "stat",
        },
        service_request={
            "identifier": [typed_identifier(ACSN, "ACC1", "urn:fhirmwl:issuer:RIS")],
            "requester": {"reference": "Practitioner/p1"},
        },
        patient=patient,
        device={"name": [{"value": "CT1", "type": "registered-name"}]},
        imaging_study={"identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}]},
        practitioners={"Practitioner/p1": {"name": [{"family": "Müller", "given": ["Jörg"]}]}},
    )


def test_full_item() -> None:
    ds = build_worklist_item(graph(), CTX)
    assert ds is not None
    assert str(ds.PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert ds.PatientID == "P123" and ds.IssuerOfPatientID == "1.2.392.200"
    assert ds.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityIDType == "ISO"
    assert ds.OtherPatientIDsSequence[0].PatientID == "X9"
    assert (ds.PatientSex, ds.PatientBirthDate) == ("M", "19700102")
    assert ds.AccessionNumber == "ACC1"
    assert ds.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID == "RIS"
    assert ds.RequestedProcedurePriority == "STAT"
    assert ds.RequestedProcedureCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert ds.StudyInstanceUID == "1.2.3"
    sps = ds.ScheduledProcedureStepSequence[0]
    # 15:30 UTC is 00:30 the next day in Tokyo
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == (
        "20240706",
        "003000",
    )
    assert sps.ScheduledStationAETitle == "CT1" and sps.Modality == "CT"
    assert str(sps.ScheduledPerformingPhysicianName) == "Müller^Jörg"
    assert sps.ScheduledProtocolCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert sps.ScheduledProcedureStepStatus == "SCHEDULED"
    # type 2: present, zero length
    for keyword in ("AdmissionID", "PatientWeight", "CurrentPatientLocation"):
        assert keyword in ds and ds[keyword].is_empty
    assert (
        "ScheduledProcedureStepLocation" in sps and sps["ScheduledProcedureStepLocation"].is_empty
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"requestedPeriod": {}}, "SPS Start Date"),
        ({"input": []}, "Modality"),
        ({"identifier": []}, "SPS ID"),
        ({"device": None}, "Scheduled Station AE Title"),
        ({"code": {}}, "SPS Description"),
    ],
)
def test_type1_missing_gives_none_and_reason(change: dict[str, Any], reason: str) -> None:
    g = graph(**{k: v for k, v in change.items() if k != "device"})
    if "device" in change:
        g = dataclasses.replace(g, device=None)
    result = build_worklist_item_result(g, CTX)
    assert result.dataset is None
    assert result.reason is not None and reason in result.reason


def test_patient_without_id_is_incomplete() -> None:
    g = graph()
    patient = copy.deepcopy(g.patient) or {}
    patient["identifier"] = []
    result = build_worklist_item_result(WorklistGraph(**{**g.__dict__, "patient": patient}), CTX)
    assert result.reason == "missing Patient ID"


@pytest.mark.parametrize(
    ("status", "sps_status"),
    [("requested", "SCHEDULED"), ("accepted", "SCHEDULED"), ("ready", "READY")]
    + [("in-progress", "STARTED"), ("on-hold", None), ("completed", None), ("cancelled", None)],
)
def test_task_status_policy(status: str, sps_status: str | None) -> None:
    ds = build_worklist_item(graph(status=status), CTX)
    got = ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus if ds else None
    assert got == sps_status


def test_name_helpers() -> None:
    names = pn_to_human_names("Doe^John^Q^Dr^Jr")
    assert names == [
        {
            "use": "official",
            "family": "Doe",
            "given": ["John", "Q"],
            "prefix": ["Dr"],
            "suffix": ["Jr"],
        }
    ]
    assert human_names_to_pn(names) == "Doe^John^Q^Dr^Jr"
    assert human_names_to_pn([{"use": "old", "family": "X"}]) == ""
    assert local_da_tm("2024-03-31T00:30:00+00:00", ZoneInfo("Europe/Berlin")) == (
        "20240331",
        "013000",
    )
    assert local_da_tm("2024-03-31", ZoneInfo("Europe/Berlin")) == ("20240331", "")
