"""Requested Contrast Agent, Pre-Medication, Patient Transport Arrangements and Confidentiality
Constraint on Patient Data Description both ways (mapping/fhir_to_dicom/order_details.py):
FHIR → DICOM with the precedence rules, HL7 v2 (OBR-30, OBR-43, ORC-28) → FHIR → DICOM, and
DICOM → FHIR → DICOM with the values in their FHIR homes instead of the Task's residual."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset
from test_build_item import graph
from test_clinical import v2_graph

from fhirmwl.fhir.model import (
    CONTRAST_AGENT,
    PATIENT_TRANSPORT,
    PRE_MEDICATION,
    V2_CONFIDENTIALITY,
    V3_CONFIDENTIALITY,
)
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    build_worklist_item_result,
    graphs_from_bundle,
    worklist_item_to_fhir,
)
from fhirmwl.mapping.fhir_to_dicom.order_details import detail_input, detail_parameter
from fhirmwl.mapping.fhir_to_dicom.residual import residual_of

GOLDEN_V2 = Path(__file__).parents[1] / "mapping_v2" / "golden" / "omi_order_details.hl7"
CONFIDENTIALITY = "ConfidentialityConstraintOnPatientDataDescription"


def _ctx() -> DicomMappingContext:
    counter = itertools.count(1)
    return DicomMappingContext(
        timezone=ZoneInfo("Europe/Berlin"), new_uuid=lambda: uuid.UUID(int=next(counter))
    )


def _item(g: Any) -> Dataset:
    item = build_worklist_item_result(g, _ctx()).dataset
    assert item is not None
    return item


def _label(code: str, display: str | None = None, system: str = V3_CONFIDENTIALITY) -> Any:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def test_absent_details() -> None:
    item = _item(graph())
    for keyword in ("PatientTransportArrangements", CONFIDENTIALITY):  # type 2: present, empty
        assert keyword in item and item[keyword].value in (None, "")
    sps = item.ScheduledProcedureStepSequence[0]
    assert "RequestedContrastAgent" not in sps and "PreMedication" not in sps  # 2C


def test_fhir_sources_and_precedence() -> None:
    base = graph()
    modality = base.task["input"]
    contrast_code = {"coding": [{"system": "http://snomed.info/sct", "code": "0"}]}
    rp = {
        **base.requested_procedure,
        "orderDetail": [
            detail_parameter(CONTRAST_AGENT, {"text": "Iohexol 350", **contrast_code}),
            detail_parameter(
                PRE_MEDICATION, {"coding": [{"code": "X", "display": "Prednisolone"}]}
            ),
            detail_parameter(PATIENT_TRANSPORT, {"coding": [{"code": "WHLC"}]}),
        ],
        "meta": {"security": [_label("N")]},
    }
    isr = {
        **(base.service_request or {}),
        "orderDetail": [detail_parameter(PATIENT_TRANSPORT, "walks")],
        "meta": {"security": [_label("VIP", "Very important person", V2_CONFIDENTIALITY)]},
    }
    patient = {**(base.patient or {}), "meta": {"security": [_label("R")]}}
    g = dataclasses.replace(base, requested_procedure=rp, service_request=isr, patient=patient)
    item = _item(g)
    sps = item.ScheduledProcedureStepSequence[0]
    assert sps.RequestedContrastAgent == "Iohexol 350"  # the RP's orderDetail: text
    assert sps.PreMedication == "Prednisolone"  # else a display
    assert item.PatientTransportArrangements == "WHLC"  # the RP's before the ISR's; else a code
    assert item[CONFIDENTIALITY].value == "restricted"  # the most restrictive level: R over N
    # a step's own Task.input wins over its procedure's orderDetail
    task = {**g.task, "input": [*modality, detail_input(CONTRAST_AGENT, "none (native scan)")]}
    stepped = _item(dataclasses.replace(g, task=task))
    assert stepped.ScheduledProcedureStepSequence[0].RequestedContrastAgent == "none (native scan)"
    # without a level, a v2 table 0177 category is shown; without an RP value, the ISR's
    rp_plain = {k: v for k, v in rp.items() if k not in ("meta", "orderDetail")}
    plain = _item(dataclasses.replace(g, requested_procedure=rp_plain, patient=base.patient))
    assert plain[CONFIDENTIALITY].value == "Very important person"
    assert plain.PatientTransportArrangements == "walks"


def test_v2_to_fhir_to_dicom() -> None:
    g = v2_graph(GOLDEN_V2)
    item = _item(g)
    assert item.PatientTransportArrangements == "Oxygen during transport"  # OBR-43 text
    transport = g.requested_procedure["orderDetail"][0]["parameter"][0]["valueCodeableConcept"]
    assert transport["coding"][0]["code"] == "WHLC"  # OBR-30 kept as the coding
    assert item[CONFIDENTIALITY].value == "Restricted - staff only"  # ORC-28.2
    assert g.service_request["meta"]["security"][0]["code"] == "R"


def _imported() -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID = "BIANCHI^LUCA", "PAT031"
    ds.AccessionNumber, ds.StudyInstanceUID = "ACC031", "1.2.3.4.31"
    ds.RequestedProcedureID, ds.RequestedProcedureDescription = "RP031", "CT abdomen"
    ds.PatientTransportArrangements = "WHEELCHAIR, OXYGEN"
    setattr(ds, CONFIDENTIALITY, "VERY RESTRICTED")
    sps = Dataset()
    sps.ScheduledStationAETitle, sps.Modality = "CT01", "CT"
    sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime = "20250102", "090000"
    sps.ScheduledProcedureStepID, sps.ScheduledProcedureStepDescription = "SPS031", "CT abd"
    sps.RequestedContrastAgent, sps.PreMedication = "IOPAMIDOL 300", "PREDNISOLONE 50 MG"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


@pytest.mark.parametrize("constraint", ["VERY RESTRICTED", "VIP - press office only"])
def test_dicom_to_fhir_to_dicom(constraint: str) -> None:
    original = _imported()
    setattr(original, CONFIDENTIALITY, constraint)
    bundle = worklist_item_to_fhir(original, _ctx())
    (task,) = _resources(bundle, "Task")
    (patient,) = _resources(bundle, "Patient")
    rp = next(r for r in _resources(bundle, "ServiceRequest") if "basedOn" in r)
    assert [i.get("valueString") for i in task["input"][1:]] == [
        "IOPAMIDOL 300",
        "PREDNISOLONE 50 MG",
    ]
    assert rp["orderDetail"] == [detail_parameter(PATIENT_TRANSPORT, "WHEELCHAIR, OXYGEN")]
    kept = residual_of(task)
    if constraint == "VERY RESTRICTED":  # a level: Patient.meta.security, nothing kept
        assert patient["meta"]["security"] == [_label("V", constraint)]
        assert kept is None
    else:  # free text naming no level stays with the Task's residual, and only that
        assert "security" not in patient["meta"]
        assert kept is not None and set(kept[0]) == {"00403001"}
    (g,) = graphs_from_bundle(bundle)
    item = _item(g)
    assert item.PatientTransportArrangements == "WHEELCHAIR, OXYGEN"
    assert item[CONFIDENTIALITY].value == constraint
    sps = item.ScheduledProcedureStepSequence[0]
    assert (sps.RequestedContrastAgent, sps.PreMedication) == (
        "IOPAMIDOL 300",
        "PREDNISOLONE 50 MG",
    )
    # a later change in FHIR shows on the worklist
    task["input"][1]["valueString"] = "GADOBUTROL"
    changed = _item(graphs_from_bundle(bundle)[0])
    assert changed.ScheduledProcedureStepSequence[0].RequestedContrastAgent == "GADOBUTROL"
