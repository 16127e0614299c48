"""FHIR graph of one Scheduled Procedure Step → one DICOM Modality Worklist item.

Implements the completed attribute map of spec/ig.md §3.3 (one item per Task; SPS attributes
inside the single Scheduled Procedure Step Sequence item, everything else top level). Type 2
attributes are always present, zero length when unknown; a type 1 attribute is never sent
empty — an item that cannot be completed is not built, and the reason says which attribute is
missing so the caller can log it (with the Task id, never patient data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.fhir.model import (
    ACSN,
    DCM,
    DCM_MODALITY_CODE,
    DEVICE_NAMETYPE,
    DICOM_UID_SYSTEM,
    FILL,
    MR,
    PLAC,
    RPID,
    SPSID,
    VN,
    identifier_of_type,
)
from fhirmwl.mapping.fhir_to_dicom.clinical import add_clinical
from fhirmwl.mapping.fhir_to_dicom.context import (
    SPS_STATUS_FOR_TASK,
    DicomMappingContext,
    WorklistGraph,
)
from fhirmwl.mapping.fhir_to_dicom.datatypes import (
    SEX_FOR_GENDER,
    birth_date_to_da,
    code_item,
    human_names_to_pn,
    issuer_item,
    local_da_tm,
)
from fhirmwl.mapping.fhir_to_dicom.jsonds import JsonDataset
from fhirmwl.mapping.fhir_to_dicom.order_details import order_details, step_details
from fhirmwl.mapping.fhir_to_dicom.residual import apply_residual, residual_of
from fhirmwl.worklist.jsoncodec import dataset_from_dict

TOP_TYPE2 = (
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientBirthDate",
    "PatientSex",
    "PatientWeight",
    "MedicalAlerts",
    "Allergies",
    "PregnancyStatus",
    "RequestingPhysician",
    "AdmissionID",
    "SpecialNeeds",
    "CurrentPatientLocation",
    "PatientState",
    "RequestedProcedurePriority",
    "PatientTransportArrangements",
    "ConfidentialityConstraintOnPatientDataDescription",
)
SPS_TYPE2 = (
    "ScheduledPerformingPhysicianName",
    "ScheduledStationName",
    "ScheduledProcedureStepLocation",
)
PRIORITY = {"stat": "STAT", "asap": "HIGH", "urgent": "HIGH", "routine": "ROUTINE"}


@dataclass(frozen=True)
class ItemResult:
    """The item as DICOM JSON (what the worklist index stores), or the reason there is none."""

    item: dict[str, Any] | None
    reason: str | None = None

    @property
    def dataset(self) -> Dataset | None:
        """The item decoded as a pydicom Dataset (for callers that need one)."""
        return dataset_from_dict(self.item) if self.item is not None else None


class Incomplete(Exception):
    """A type 1 attribute has no value."""


def build_worklist_item(graph: WorklistGraph, ctx: DicomMappingContext) -> Dataset | None:
    """The worklist item for ``graph.task``, or ``None`` (see :func:`build_worklist_item_result`
    for the reason)."""
    return build_worklist_item_result(graph, ctx).dataset


def build_worklist_item_result(graph: WorklistGraph, ctx: DicomMappingContext) -> ItemResult:
    status = graph.task.get("status")
    if status not in ctx.worklist_statuses:
        return ItemResult(None, f"Task.status {status!r} is not shown on the worklist")
    ds = JsonDataset()
    ds.SpecificCharacterSet = ctx.specific_character_set
    for keyword in TOP_TYPE2:
        setattr(ds, keyword, None)
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    try:
        _patient(ds, graph)
        add_clinical(ds, list(graph.clinical))
        _visit(ds, graph)
        _service_request(ds, graph)
        _requested_procedure(ds, graph)
        sps = _sps(graph, ctx)
        for target, details in ((ds, order_details(graph)), (sps, step_details(graph))):
            for keyword, value in details.items():
                setattr(target, keyword, value)
        ds.ScheduledProcedureStepSequence = [sps]
    except Incomplete as exc:
        return ItemResult(None, str(exc))
    item = ds.to_dict()
    kept = residual_of(graph.task)
    if kept is not None:  # an imported item: re-emit what FHIR has no home for
        item = apply_residual(item, *kept)
    return ItemResult(item)


def _require(value: Any, what: str) -> Any:
    if value in (None, "", []):
        raise Incomplete(f"missing {what}")
    return value


def _patient(ds: JsonDataset, graph: WorklistGraph) -> None:
    patient = _require(graph.patient, "Patient")
    ds.PatientName = _require(human_names_to_pn(patient.get("name")), "Patient's Name")
    identifiers = list(patient.get("identifier") or [])
    primary = identifier_of_type(patient, MR) or (identifiers[0] if identifiers else {})
    ds.PatientID = _require(primary.get("value"), "Patient ID")
    issuer = issuer_item(primary.get("system"), (primary.get("assigner") or {}).get("display"))
    if issuer is not None:
        local = issuer.get("LocalNamespaceEntityID") or issuer.get("UniversalEntityID")
        ds.IssuerOfPatientID = local[:64]
        if "UniversalEntityID" in issuer:
            qualifiers = JsonDataset()
            qualifiers.UniversalEntityID = issuer.UniversalEntityID
            qualifiers.UniversalEntityIDType = issuer.UniversalEntityIDType
            ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    others = [_other_id(i) for i in identifiers if i is not primary and i.get("value")]
    if others:
        ds.OtherPatientIDsSequence = others
    ds.PatientBirthDate = birth_date_to_da(patient.get("birthDate")) or None
    ds.PatientSex = SEX_FOR_GENDER.get(patient.get("gender") or "") or None


def _other_id(identifier: dict[str, Any]) -> JsonDataset:
    item = JsonDataset()
    item.PatientID = identifier["value"]
    issuer = issuer_item(identifier.get("system"))
    if issuer is not None:
        item.IssuerOfPatientID = (
            issuer.get("LocalNamespaceEntityID") or issuer.get("UniversalEntityID")
        )[:64]
    item.TypeOfPatientID = "TEXT"
    return item


def _visit(ds: JsonDataset, graph: WorklistGraph) -> None:
    encounter = graph.encounter
    if not encounter:
        return
    visit = identifier_of_type(encounter, VN) or next(iter(encounter.get("identifier") or []), None)
    if visit and visit.get("value"):
        ds.AdmissionID = visit["value"]
        issuer = issuer_item(visit.get("system"))
        if issuer is not None:
            ds.IssuerOfAdmissionIDSequence = [issuer]
    for loc in encounter.get("location") or []:
        location = graph.location(loc.get("location"))
        if location and location.get("name"):
            ds.CurrentPatientLocation = location["name"][:64]
            break
    for participant in encounter.get("participant") or []:
        codes = [
            c.get("code") for t in participant.get("type") or [] for c in t.get("coding") or []
        ]
        practitioner = graph.practitioner(participant.get("actor"))
        if "REF" in codes and practitioner:
            ds.ReferringPhysicianName = human_names_to_pn(practitioner.get("name")) or None


def _service_request(ds: JsonDataset, graph: WorklistGraph) -> None:
    isr = graph.service_request
    if not isr:
        return
    accession = identifier_of_type(isr, ACSN)
    if accession and accession.get("value"):
        ds.AccessionNumber = accession["value"]
        issuer = issuer_item(accession.get("system"))
        if issuer is not None:
            ds.IssuerOfAccessionNumberSequence = [issuer]
    for code, value_kw, seq_kw in (
        (PLAC, "PlacerOrderNumberImagingServiceRequest", "OrderPlacerIdentifierSequence"),
        (FILL, "FillerOrderNumberImagingServiceRequest", "OrderFillerIdentifierSequence"),
    ):
        ident = identifier_of_type(isr, code)
        if ident and ident.get("value"):
            setattr(ds, value_kw, ident["value"])
            issuer = issuer_item(ident.get("system"))
            if issuer is not None:
                setattr(ds, seq_kw, [issuer])
    requester = graph.practitioner(isr.get("requester"))
    if requester:
        ds.RequestingPhysician = human_names_to_pn(requester.get("name")) or None
        if ds.ReferringPhysicianName in (None, ""):
            ds.ReferringPhysicianName = ds.RequestingPhysician
    notes = "\n".join(n.get("text", "") for n in isr.get("note") or [])
    if notes:
        ds.ImagingServiceRequestComments = notes


def _requested_procedure(ds: JsonDataset, graph: WorklistGraph) -> None:
    rp = _require(graph.requested_procedure, "RequestedProcedure ServiceRequest")
    rpid = identifier_of_type(rp, RPID)
    ds.RequestedProcedureID = _require((rpid or {}).get("value"), "Requested Procedure ID")
    concept = (rp.get("code") or {}).get("concept") or {}
    codings = concept.get("coding") or []
    description = concept.get("text") or (codings[0].get("display") if codings else None)
    _require(description or codings, "Requested Procedure Description/Code")
    if description:
        ds.RequestedProcedureDescription = description[:64]
    if codings:
        ds.RequestedProcedureCodeSequence = [code_item(codings[0])]
    ds.RequestedProcedurePriority = PRIORITY.get(rp.get("priority") or "") or None
    reasons = [r.get("concept") or {} for r in rp.get("reason") or []]
    texts = [str(r["text"]) for r in reasons if r.get("text")]
    if texts:
        ds.ReasonForTheRequestedProcedure = texts[0][:64]
    reason_codes = [code_item(c) for r in reasons for c in r.get("coding") or []]
    if reason_codes:
        ds.ReasonForRequestedProcedureCodeSequence = reason_codes
    ds.StudyInstanceUID = _require(_study_uid(graph.imaging_study), "Study Instance UID")


def _study_uid(study: dict[str, Any] | None) -> str | None:
    for ident in (study or {}).get("identifier") or []:
        if ident.get("system") == DICOM_UID_SYSTEM and ident.get("value"):
            return str(ident["value"]).removeprefix("urn:oid:")
    return None


def _sps(graph: WorklistGraph, ctx: DicomMappingContext) -> JsonDataset:
    task = graph.task
    sps = JsonDataset()
    for keyword in SPS_TYPE2:
        setattr(sps, keyword, None)
    devices = [d for d in (graph.device, *graph.other_devices) if d]
    aets = [a for a in (_device_name(d, "registered-name") for d in devices) if a]
    _require(aets, "Scheduled Station AE Title")
    sps.ScheduledStationAETitle = aets if len(aets) > 1 else aets[0]
    names = [n[:16] for n in (_device_name(d, "user-friendly-name") for d in devices) if n]
    sps.ScheduledStationName = (names if len(names) > 1 else names[0]) if names else None
    period = task.get("requestedPeriod") or {}
    start_da, start_tm = local_da_tm(period.get("start"), ctx.timezone)
    sps.ScheduledProcedureStepStartDate = _require(start_da, "SPS Start Date")
    sps.ScheduledProcedureStepStartTime = start_tm or "000000"
    end_da, end_tm = local_da_tm(period.get("end"), ctx.timezone)
    if end_da:
        sps.ScheduledProcedureStepEndDate, sps.ScheduledProcedureStepEndTime = end_da, end_tm
    sps.Modality = _require(_modality(task), "Modality")
    performer = graph.practitioner(task.get("owner")) or next(
        (
            graph.practitioner(p.get("reference"))
            for p in task.get("requestedPerformer") or []
            if graph.practitioner(p.get("reference"))
        ),
        None,
    )
    if performer:
        sps.ScheduledPerformingPhysicianName = human_names_to_pn(performer.get("name")) or None
    _protocol(sps, task)
    location = graph.location(task.get("location"))
    if location and location.get("name"):
        sps.ScheduledProcedureStepLocation = location["name"][:16]
    sps_id = identifier_of_type(task, SPSID)
    sps.ScheduledProcedureStepID = _require((sps_id or {}).get("value"), "SPS ID")
    sps.ScheduledProcedureStepStatus = SPS_STATUS_FOR_TASK.get(task.get("status") or "", "")
    comments = "\n".join(str(n["text"]) for n in task.get("note") or [] if n.get("text"))
    if comments:  # (0040,0400) Comments on the Scheduled Procedure Step, LT
        sps.CommentsOnTheScheduledProcedureStep = comments[:10240]
    return sps


def _protocol(sps: JsonDataset, task: dict[str, Any]) -> None:
    code = task.get("code") or {}
    codings = code.get("coding") or []
    description = code.get("text") or (codings[0].get("display") if codings else None)
    _require(description or codings, "SPS Description/Scheduled Protocol Code")
    if description:
        sps.ScheduledProcedureStepDescription = description[:64]
    if codings:
        sps.ScheduledProtocolCodeSequence = [code_item(c) for c in codings]


def _modality(task: dict[str, Any]) -> str | None:
    for item in task.get("input") or []:
        types = (item.get("type") or {}).get("coding") or []
        if any(c.get("system") == DCM and c.get("code") == DCM_MODALITY_CODE for c in types):
            for coding in (item.get("valueCodeableConcept") or {}).get("coding") or []:
                if coding.get("system") == DCM and coding.get("code"):
                    return str(coding["code"])
    return None


def _device_name(device: dict[str, Any] | None, name_type: str) -> str | None:
    for name in (device or {}).get("name") or []:
        kind = name.get("type")
        codes = (
            [kind]
            if isinstance(kind, str)
            else [
                c.get("code")
                for c in (kind or {}).get("coding") or []
                if c.get("system") in (None, DEVICE_NAMETYPE)
            ]
        )
        if name_type in codes and name.get("value"):
            return str(name["value"])
    return None


__all__ = ["ItemResult", "build_worklist_item", "build_worklist_item_result"]
