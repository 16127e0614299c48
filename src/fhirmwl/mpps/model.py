"""Modality Performed Procedure Step rules and mapping (pure; PS3.4 Annex F.7, PS3.3 C.4.13).

What a modality reports with N-CREATE / N-SET is checked here against the MPPS state machine
(IN PROGRESS → COMPLETED | DISCONTINUED, final states frozen) and the type 1 attributes of
Table F.7.2-1, and turned into plain data: the references to the scheduled steps, the FHIR
``Procedure`` that records the performed step and the series/instance counts for the
ImagingStudy. No IO: the service (``mpps.service``) decides what to read and write, the DICOM
listener (``dicom.mpps``) maps :class:`MppsRefusal` onto DIMSE statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from fhirmwl.fhir.model import DCM, DICOM_UID_SYSTEM
from fhirmwl.mapping.fhir_to_dicom.datatypes import da_tm_to_fhir, item_to_coding

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
STATES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
PROCEDURE_STATUS = {IN_PROGRESS: "in-progress", COMPLETED: "completed", DISCONTINUED: "stopped"}

# DIMSE statuses (PS3.7 C, PS3.4 F.7.2)
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_OBJECT_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
# Error ID (0000,0903) with 0110: "Performed Procedure Step Object may no longer be updated"
ERROR_NO_LONGER_UPDATABLE = 0xA710

# Type 1 at N-CREATE (Table F.7.2-1); empty or absent → 0121 / 0120.
CREATE_TYPE1 = (
    "ScheduledStepAttributesSequence",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepStatus",
    "Modality",
)
# Type 1 once the step is final (COMPLETED or DISCONTINUED).
FINAL_TYPE1 = ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime")
# "Not allowed" in N-SET: a change is refused (the same value again is tolerated).
SET_NOT_ALLOWED = (
    "ScheduledStepAttributesSequence",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "Modality",
    "StudyID",
)
# Discontinuation reason "Incorrect worklist entry selected" (CID 9300).
INCORRECT_WORKLIST_ENTRY = "110514"


class MppsRefusal(Exception):
    """A request the SCP must refuse: DIMSE ``status``, Error Comment and the offending tags."""

    def __init__(
        self, status: int, comment: str, tags: tuple[int, ...] = (), error_id: int | None = None
    ) -> None:
        super().__init__(comment)
        self.status, self.comment, self.tags, self.error_id = status, comment, tags, error_id


@dataclass(frozen=True)
class StepReference:
    """One item of the Scheduled Step Attributes Sequence (0040,0270)."""

    study_uid: str = ""
    accession: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""

    @property
    def scheduled(self) -> bool:
        return bool(self.sps_id or self.accession or self.requested_procedure_id)


@dataclass
class Series:
    uid: str
    modality: str
    description: str = ""
    instances: list[tuple[str, str]] = field(default_factory=list)  # (SOP Class, SOP Instance)


@dataclass
class PerformedStep:
    """The facts of one MPPS instance the broker acts on."""

    uid: str
    state: str
    pps_id: str
    station_aet: str
    station_name: str
    modality: str
    start: str | None
    end: str | None
    description: str
    patient_id: str
    patient_issuer: str
    references: list[StepReference]
    codes: list[dict[str, Any]]
    discontinuation: list[dict[str, Any]]
    series: list[Series]

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.series)

    @property
    def accession(self) -> str:
        return next((r.accession for r in self.references if r.accession), "")

    @property
    def study_uid(self) -> str:
        return next((r.study_uid for r in self.references if r.study_uid), "")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    return str(value).strip()


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    value = ds.get(keyword)
    return list(value) if value else []


def _tag(keyword: str) -> int:
    return int(Tag(keyword))


def check_create(ds: Dataset) -> None:
    """Refuse an N-CREATE that lacks a type 1 value or does not start IN PROGRESS."""
    missing = [k for k in CREATE_TYPE1 if k not in ds]
    if missing:
        raise MppsRefusal(
            MISSING_ATTRIBUTE, f"missing {missing[0]}", tuple(_tag(k) for k in missing)
        )
    empty = [k for k in CREATE_TYPE1 if not ds[k].value]
    if empty:
        raise MppsRefusal(
            MISSING_ATTRIBUTE_VALUE, f"{empty[0]} has no value", tuple(_tag(k) for k in empty)
        )
    state = _text(ds, "PerformedProcedureStepStatus")
    if state != IN_PROGRESS:
        raise MppsRefusal(
            INVALID_ATTRIBUTE_VALUE,
            f"N-CREATE status must be IN PROGRESS, not {state[:20]}",
            (_tag("PerformedProcedureStepStatus"),),
        )


def merge_set(current: Dataset, modifications: Dataset) -> Dataset:
    """The MPPS after an N-SET, or a refusal (final state frozen, bad status, missing values)."""
    state = _text(current, "PerformedProcedureStepStatus")
    if state != IN_PROGRESS:
        raise MppsRefusal(
            PROCESSING_FAILURE,
            f"performed step is {state}; it may no longer be updated",
            error_id=ERROR_NO_LONGER_UPDATABLE,
        )
    changed = [
        k
        for k in SET_NOT_ALLOWED
        if k in modifications and (k not in current or modifications[k].value != current[k].value)
    ]
    if changed:
        raise MppsRefusal(
            INVALID_ATTRIBUTE_VALUE,
            f"{changed[0]} may not be changed by N-SET",
            tuple(_tag(k) for k in changed),
        )
    merged = Dataset()
    merged.update(current)
    for elem in modifications:
        merged[elem.tag] = elem
    new_state = _text(merged, "PerformedProcedureStepStatus")
    if new_state not in STATES:
        raise MppsRefusal(
            INVALID_ATTRIBUTE_VALUE,
            f"Performed Procedure Step Status {new_state[:20]!r} is not a defined term",
            (_tag("PerformedProcedureStepStatus"),),
        )
    if new_state != IN_PROGRESS:
        missing = [k for k in FINAL_TYPE1 if not _text(merged, k)]
        if new_state == COMPLETED and not _items(merged, "PerformedSeriesSequence"):
            missing.append("PerformedSeriesSequence")
        if missing:
            raise MppsRefusal(
                PROCESSING_FAILURE,
                f"{new_state} requires {', '.join(missing)}"[:64],
                tuple(_tag(k) for k in missing),
            )
    return merged


def _references(ds: Dataset) -> list[StepReference]:
    return [
        StepReference(
            _text(item, "StudyInstanceUID"),
            _text(item, "AccessionNumber"),
            _text(item, "RequestedProcedureID"),
            _text(item, "ScheduledProcedureStepID"),
        )
        for item in _items(ds, "ScheduledStepAttributesSequence")
    ]


def _series(ds: Dataset, modality: str) -> list[Series]:
    out = []
    for item in _items(ds, "PerformedSeriesSequence"):
        refs = [
            *_items(item, "ReferencedImageSequence"),
            *_items(item, "ReferencedNonImageCompositeSOPInstanceSequence"),
        ]
        out.append(
            Series(
                _text(item, "SeriesInstanceUID"),
                _text(item, "Modality") or modality,
                _text(item, "SeriesDescription"),
                [
                    (_text(r, "ReferencedSOPClassUID"), _text(r, "ReferencedSOPInstanceUID"))
                    for r in refs
                ],
            )
        )
    return out


def performed_step(uid: str, ds: Dataset, tz: ZoneInfo) -> PerformedStep:
    """Read the attributes the broker uses from a (merged) MPPS data set."""
    modality = _text(ds, "Modality")
    issuer = _text(ds, "IssuerOfPatientID")
    return PerformedStep(
        uid=uid,
        state=_text(ds, "PerformedProcedureStepStatus"),
        pps_id=_text(ds, "PerformedProcedureStepID"),
        station_aet=_text(ds, "PerformedStationAETitle"),
        station_name=_text(ds, "PerformedStationName"),
        modality=modality,
        start=da_tm_to_fhir(
            _text(ds, "PerformedProcedureStepStartDate"),
            _text(ds, "PerformedProcedureStepStartTime"),
            tz,
        ),
        end=da_tm_to_fhir(
            _text(ds, "PerformedProcedureStepEndDate"),
            _text(ds, "PerformedProcedureStepEndTime"),
            tz,
        ),
        description=_text(ds, "PerformedProcedureStepDescription"),
        patient_id=_text(ds, "PatientID"),
        patient_issuer=issuer,
        references=_references(ds),
        codes=[item_to_coding(i) for i in _items(ds, "ProcedureCodeSequence")],
        discontinuation=[
            item_to_coding(i)
            for i in _items(ds, "PerformedProcedureStepDiscontinuationReasonCodeSequence")
        ],
        series=_series(ds, modality),
    )


def task_status_for(step: PerformedStep) -> str:
    """Task.status a performed step implies for the scheduled step(s) it performs.

    DISCONTINUED: ``cancelled`` when nothing was acquired or the modality says the wrong
    worklist entry was selected, else ``failed`` (attempted, not completed).
    """
    if step.state == IN_PROGRESS:
        return "in-progress"
    if step.state == COMPLETED:
        return "completed"
    wrong_entry = any(c.get("code") == INCORRECT_WORKLIST_ENTRY for c in step.discontinuation)
    return "cancelled" if wrong_entry or step.instance_count == 0 else "failed"


def discontinuation_reason(step: PerformedStep) -> dict[str, Any] | None:
    """Task.statusReason concept for a DISCONTINUED step (CID 9300 coding, else text)."""
    if step.state != DISCONTINUED:
        return None
    if step.discontinuation:
        return {"coding": step.discontinuation}
    return {"text": "performed procedure step discontinued"}


def procedure_resource(
    step: PerformedStep,
    based_on: list[str],
    subject: dict[str, Any],
    performer: dict[str, Any],
) -> dict[str, Any]:
    """The FHIR R5 Procedure recording one performed procedure step.

    ``based_on``: ``ServiceRequest/<id>`` of the Requested Procedures performed (empty while
    unscheduled); ``subject``: a Patient reference (literal, or logical by identifier);
    ``performer``: the station (Device reference, or display of the AE title).
    """
    proc: dict[str, Any] = {
        "resourceType": "Procedure",
        "identifier": [
            {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{step.uid}"},
            {"system": "urn:fhirmwl:pps-id", "value": step.pps_id},
        ],
        "status": PROCEDURE_STATUS.get(step.state, "unknown"),
        "category": [{"coding": [{"system": DCM, "code": step.modality}]}],
        "subject": subject,
        "performer": [{"actor": performer}],
    }
    if based_on:
        proc["basedOn"] = [{"reference": r} for r in based_on]
    if step.codes or step.description:
        code: dict[str, Any] = {}
        if step.codes:
            code["coding"] = step.codes
        if step.description:
            code["text"] = step.description
        proc["code"] = code
    if step.start:
        proc["occurrencePeriod"] = {"start": step.start}
        if step.end:
            proc["occurrencePeriod"]["end"] = step.end
    reason = discontinuation_reason(step)
    if reason:
        proc["statusReason"] = reason
    return proc


def study_counts(study: dict[str, Any], step: PerformedStep, procedure_ref: str) -> dict[str, Any]:
    """The ImagingStudy with the series and instances a COMPLETED step reports (merged by UID)."""
    out = dict(study)
    series = {s.get("uid"): dict(s) for s in out.get("series") or [] if s.get("uid")}
    for s in step.series:
        if not s.uid:
            continue
        entry: dict[str, Any] = {
            "uid": s.uid,
            "modality": {"coding": [{"system": DCM, "code": s.modality or step.modality}]},
            "numberOfInstances": len(s.instances),
        }
        if s.description:
            entry["description"] = s.description
        instances = [
            {"uid": uid, "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{cls}"}}
            for cls, uid in s.instances
            if uid and cls
        ]
        if instances:
            entry["instance"] = instances
        series[s.uid] = entry
    out["series"] = list(series.values())
    out["numberOfSeries"] = len(out["series"])
    out["numberOfInstances"] = sum(int(s.get("numberOfInstances") or 0) for s in out["series"])
    # ImagingStudy.status stays as it is: the guide's profile fixes it to "registered".
    part_of = [p for p in out.get("partOf") or [] if p.get("reference") != procedure_ref]
    out["partOf"] = [*part_of, {"reference": procedure_ref}]
    if step.start and not out.get("started"):
        out["started"] = step.start
    return out
