"""DICOM worklist item → FHIR transaction Bundle (the import path from folder worklists).

``fhirmwl mwl import`` reads ``.wl``/``.dump`` files from DCMTK or Orthanc folders and turns each
item into the same resource graph the broker builds itself (docs/resource-model.md): Patient,
Encounter (when an Admission ID is present), ImagingServiceRequest, RequestedProcedure, Task,
Device (station), ImagingStudy and Practitioners. Patient and Device use conditional create so
that repeated imports and several items of one patient converge on one resource.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.conformance.defs_terminology import CID_33
from fhirmwl.fhir.model import (
    ACSN,
    CONTRAST_AGENT,
    DICOM_UID_SYSTEM,
    MR,
    PATIENT_TRANSPORT,
    PRE_MEDICATION,
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
    RPID,
    SPSID,
    VN,
    modality_input,
    typed_identifier,
)
from fhirmwl.mapping.fhir_to_dicom.context import DicomMappingContext
from fhirmwl.mapping.fhir_to_dicom.datatypes import (
    GENDER_FOR_SEX,
    da_tm_to_fhir,
    item_to_coding,
    pn_to_human_names,
)
from fhirmwl.mapping.fhir_to_dicom.order_details import (
    confidentiality_label,
    detail_input,
    detail_parameter,
)
from fhirmwl.mapping.fhir_to_dicom.residual import residual, residual_extension
from fhirmwl.worklist.jsoncodec import dataset_to_dict
from fhirmwl.worklist.values import element_strings

TASK_STATUS_FOR_SPS = {
    "SCHEDULED": "requested",
    "ARRIVED": "ready",
    "READY": "ready",
    "STARTED": "in-progress",
}
# FHIR has no "low"/"medium": both become routine (lossy, docs/dicom-conformance.md).
PRIORITY_FOR_DICOM = {
    "STAT": "stat",
    "HIGH": "urgent",
    "ROUTINE": "routine",
    "MEDIUM": "routine",
    "LOW": "routine",
}
Resource = dict[str, Any]


def _values(ds: Dataset, keyword: str) -> list[str]:
    return element_strings(ds.data_element(keyword)) if keyword in ds else []


def _text(ds: Dataset, keyword: str) -> str:
    values = element_strings(ds.data_element(keyword)) if keyword in ds else []
    return values[0] if values else ""


def _issuer_system(ds: Dataset, ctx: DicomMappingContext, local: str, default: str) -> str:
    qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence") or [Dataset()]
    return ctx.systems.for_issuer(
        local,
        _text(qualifiers[0], "UniversalEntityID"),
        _text(qualifiers[0], "UniversalEntityIDType"),
        default,
    )


def _seq_issuer(ds: Dataset, keyword: str, ctx: DicomMappingContext, default: str) -> str:
    items = ds.get(keyword) or [Dataset()]
    item = items[0]
    return ctx.systems.for_issuer(
        _text(item, "LocalNamespaceEntityID"),
        _text(item, "UniversalEntityID"),
        _text(item, "UniversalEntityIDType"),
        default,
    )


class _Builder:
    def __init__(self, ctx: DicomMappingContext) -> None:
        self.ctx = ctx
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: Resource, if_none_exist: str | None = None) -> str:
        url = self.ctx.full_url()
        request: dict[str, str] = {"method": "POST", "url": resource["resourceType"]}
        if if_none_exist:
            request["ifNoneExist"] = if_none_exist
        self.entries.append({"fullUrl": url, "resource": resource, "request": request})
        return url

    def practitioner(self, pn: str) -> dict[str, str] | None:
        if not pn.strip("^="):
            return None
        url = self.add({"resourceType": "Practitioner", "name": pn_to_human_names(pn)})
        return {"reference": url}


def worklist_item_to_fhir(ds: Dataset, ctx: DicomMappingContext) -> dict[str, Any]:
    """A ``transaction`` Bundle creating the resource graph of one worklist item."""
    b = _Builder(ctx)
    patient_ref = {"reference": b.add(*_patient(ds, ctx))}
    encounter_ref = _encounter(ds, ctx, b, patient_ref)
    isr = _isr(ds, ctx, b, patient_ref)
    isr_ref = {"reference": b.add(isr)}
    rp = _rp(ds, ctx, patient_ref, isr_ref, encounter_ref)
    rp_ref = {"reference": b.add(rp)}
    study_uid = _text(ds, "StudyInstanceUID")
    if study_uid:
        b.add(_study(study_uid, patient_ref, rp_ref, isr_ref))
    tasks = [
        b.add(_task(sps, ctx, b, patient_ref, rp_ref, encounter_ref))
        for sps in ds.get("ScheduledProcedureStepSequence") or []
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}
    _keep_residuals(ds, bundle, tasks, ctx)
    return bundle


def _keep_residuals(
    ds: Dataset, bundle: dict[str, Any], task_urls: list[str], ctx: DicomMappingContext
) -> None:
    """Rebuild each Task's item from the new resources and keep, on the Task, every attribute
    of the original that the rebuilt item does not reproduce (lossless import)."""
    from fhirmwl.mapping.fhir_to_dicom.graph import graphs_from_bundle
    from fhirmwl.mapping.fhir_to_dicom.item import build_worklist_item_result

    original = dataset_to_dict(ds)
    steps = (original.get("00400100") or {}).get("Value") or [{}]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    graphs = {id(g.task): g for g in graphs_from_bundle(bundle)}
    for url, sps in zip(task_urls, steps, strict=False):
        task = by_url[url]
        graph = graphs.get(id(task))
        built = build_worklist_item_result(graph, ctx).item if graph else None
        one_step = {**original, "00400100": {"vr": "SQ", "Value": [sps]}}
        kept, derived = residual(one_step, built or {})
        extension = residual_extension(kept, derived)
        if extension is not None:
            task.setdefault("extension", []).append(extension)


def _patient(ds: Dataset, ctx: DicomMappingContext) -> tuple[Resource, str | None]:
    patient: Resource = {"resourceType": "Patient", "meta": {"profile": [PROFILE_PATIENT]}}
    pid = _text(ds, "PatientID")
    condition = None
    if pid:
        system = _issuer_system(ds, ctx, _text(ds, "IssuerOfPatientID"), ctx.systems.patient)
        patient["identifier"] = [typed_identifier(MR, pid, system)]
        condition = f"identifier={system}|{pid}"
    for other in ds.get("OtherPatientIDsSequence") or []:
        system = _issuer_system(other, ctx, _text(other, "IssuerOfPatientID"), ctx.systems.patient)
        patient.setdefault("identifier", []).append(
            {"system": system, "value": _text(other, "PatientID")}
        )
    names = pn_to_human_names(_text(ds, "PatientName"))
    if names:
        patient["name"] = names
    birth = _iso_date(_text(ds, "PatientBirthDate"))
    if birth:  # an invalid date (17320431) is kept with the Task's residual instead
        patient["birthDate"] = birth
    gender = GENDER_FOR_SEX.get(_text(ds, "PatientSex").upper())
    if gender:
        patient["gender"] = gender
    constraint = _text(ds, "ConfidentialityConstraintOnPatientDataDescription")
    label = confidentiality_label(constraint, constraint) if constraint else None
    if label:  # free text that names no confidentiality level is kept with the Task's residual
        patient["meta"]["security"] = [label]
    return patient, condition


def _iso_date(da: str) -> str | None:
    try:
        return date(int(da[:4]), int(da[4:6]), int(da[6:8])).isoformat() if len(da) == 8 else None
    except ValueError:
        return None


def _encounter(
    ds: Dataset, ctx: DicomMappingContext, b: _Builder, patient_ref: dict[str, str]
) -> dict[str, str] | None:
    admission = _text(ds, "AdmissionID")
    if not admission:
        return None
    system = _seq_issuer(ds, "IssuerOfAdmissionIDSequence", ctx, ctx.systems.visit)
    encounter: Resource = {
        "resourceType": "Encounter",
        "meta": {"profile": [PROFILE_VISIT]},
        "status": "planned",
        "identifier": [typed_identifier(VN, admission, system)],
        "subject": patient_ref,
    }
    return {"reference": b.add(encounter, f"identifier={system}|{admission}")}


def _isr(
    ds: Dataset, ctx: DicomMappingContext, b: _Builder, patient_ref: dict[str, str]
) -> Resource:
    isr: Resource = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [PROFILE_ISR]},
        "status": "active",
        "intent": "order",
        "subject": patient_ref,
    }
    accession = _text(ds, "AccessionNumber")
    if accession:
        system = _seq_issuer(ds, "IssuerOfAccessionNumberSequence", ctx, ctx.systems.accession)
        isr["identifier"] = [typed_identifier(ACSN, accession, system)]
    requester = b.practitioner(_text(ds, "RequestingPhysician"))
    if requester:
        isr["requester"] = requester
    comments = _text(ds, "ImagingServiceRequestComments")
    if comments:
        isr["note"] = [{"text": comments}]
    return isr


def _rp(
    ds: Dataset,
    ctx: DicomMappingContext,
    patient_ref: dict[str, str],
    isr_ref: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> Resource:
    rp: Resource = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [PROFILE_RP]},
        "status": "active",
        "intent": "order",
        "basedOn": [isr_ref],
        "subject": patient_ref,
    }
    rpid = _text(ds, "RequestedProcedureID")
    if rpid:
        rp["identifier"] = [typed_identifier(RPID, rpid, ctx.systems.requested_procedure)]
    concept: Resource = {}
    codes = ds.get("RequestedProcedureCodeSequence") or []
    if codes:
        concept["coding"] = [item_to_coding(codes[0])]
    if _text(ds, "RequestedProcedureDescription"):
        concept["text"] = _text(ds, "RequestedProcedureDescription")
    if concept:
        rp["code"] = {"concept": concept}
    priority = PRIORITY_FOR_DICOM.get(_text(ds, "RequestedProcedurePriority").upper())
    if priority:
        rp["priority"] = priority
    if encounter_ref:
        rp["encounter"] = encounter_ref
    transport = _text(ds, "PatientTransportArrangements")
    if transport:
        rp["orderDetail"] = [detail_parameter(PATIENT_TRANSPORT, transport)]
    return rp


def _study(uid: str, patient_ref: Any, rp_ref: Any, isr_ref: Any) -> Resource:
    return {
        "resourceType": "ImagingStudy",
        "meta": {"profile": [PROFILE_STUDY]},
        "status": "registered",
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}],
        "subject": patient_ref,
        "basedOn": [rp_ref, isr_ref],
    }


def _stations(sps: Dataset, ctx: DicomMappingContext, b: _Builder) -> list[dict[str, Any]]:
    """One Device per Scheduled Station AE Title (VM 1-n), names paired by position."""
    aets = _values(sps, "ScheduledStationAETitle")
    names = _values(sps, "ScheduledStationName")
    performers = []
    for index, aet in enumerate(aets):
        device_names = [{"value": aet, "type": "registered-name"}]
        if index < len(names) and names[index]:
            device_names.append({"value": names[index], "type": "user-friendly-name"})
        device: Resource = {
            "resourceType": "Device",
            "meta": {"profile": [PROFILE_STATION]},
            "identifier": [{"system": ctx.systems.station_ae, "value": aet}],
            "name": device_names,
        }
        url = b.add(device, f"identifier={ctx.systems.station_ae}|{aet}")
        performers.append({"reference": {"reference": url}})
    return performers


def _task(
    sps: Dataset,
    ctx: DicomMappingContext,
    b: _Builder,
    patient_ref: dict[str, str],
    rp_ref: dict[str, str],
    encounter_ref: dict[str, str] | None,
) -> Resource:
    task: Resource = {
        "resourceType": "Task",
        "meta": {"profile": [PROFILE_SPS]},
        "status": TASK_STATUS_FOR_SPS.get(_text(sps, "ScheduledProcedureStepStatus"), "requested"),
        "intent": "plan",
        "basedOn": [rp_ref],
        "for": patient_ref,
    }
    if encounter_ref:
        task["encounter"] = encounter_ref
    sps_id = _text(sps, "ScheduledProcedureStepID")
    if sps_id:
        task["identifier"] = [typed_identifier(SPSID, sps_id, ctx.systems.sps)]
    code: Resource = {}
    protocol = [item_to_coding(c) for c in sps.get("ScheduledProtocolCodeSequence") or []]
    if protocol:
        code["coding"] = protocol
    if _text(sps, "ScheduledProcedureStepDescription"):
        code["text"] = _text(sps, "ScheduledProcedureStepDescription")
    if code:
        task["code"] = code
    start = da_tm_to_fhir(
        _text(sps, "ScheduledProcedureStepStartDate"),
        _text(sps, "ScheduledProcedureStepStartTime"),
        ctx.timezone,
    )
    end = da_tm_to_fhir(
        _text(sps, "ScheduledProcedureStepEndDate"),
        _text(sps, "ScheduledProcedureStepEndTime"),
        ctx.timezone,
    )
    if start:
        task["requestedPeriod"] = {"start": start, **({"end": end} if end else {})}
    modality = _text(sps, "Modality")
    if modality:
        # the profile binds CID 33; another value (RTPLAN …) is kept with the Task's residual
        task["input"] = [modality_input(modality if modality in CID_33 else "OT")]
    performers = _stations(sps, ctx, b)
    if performers:
        task["requestedPerformer"] = performers
    location = _text(sps, "ScheduledProcedureStepLocation")
    if location:
        task["location"] = {
            "reference": b.add({"resourceType": "Location", "name": location}, f"name={location}")
        }
    owner = b.practitioner(_text(sps, "ScheduledPerformingPhysicianName"))
    if owner:
        task["owner"] = owner
    comments = _text(sps, "CommentsOnTheScheduledProcedureStep")
    if comments:
        task["note"] = [{"text": comments}]
    for keyword, detail in (
        ("RequestedContrastAgent", CONTRAST_AGENT),
        ("PreMedication", PRE_MEDICATION),
    ):
        if _text(sps, keyword):
            task.setdefault("input", []).append(detail_input(detail, _text(sps, keyword)))
    return task
