"""MWL worklist item → UPS workitem (PS3.4 Annex CC), for the read-only UPS-RS search.

The broker schedules Modality Worklist steps; UPS-RS clients ask for Unified Procedure Steps.
Rather than keeping a second model, each stored worklist item is re-expressed with the crosswalk
of spec/ups-rs.md §1.2 when a ``/workitems`` search reads it, and the shared matcher runs on the
result. Pure: no IO; the workitem UID is derived from the Task id so it is stable.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.worklist.values import element_strings

# Derivation namespace for workitem SOP Instance UIDs (2.25 + UUID, PS3.5 B.2).
_UID_NAMESPACE = uuid.UUID("0b4b3ad4-6c41-5a1c-9f1d-6d3f0c9b7e21")
STATION_SCHEME = "99FHIRMWL_AE"
PRIORITY = {"STAT": "HIGH", "HIGH": "HIGH", "MEDIUM": "MEDIUM", "ROUTINE": "LOW", "LOW": "LOW"}
STATE = {"STARTED": "IN PROGRESS", "IN PROGRESS": "IN PROGRESS"}
# Attributes of the MWL item copied unchanged into the workitem.
PATIENT_KEYS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "AdmissionID",
    "StudyInstanceUID",
)
REQUEST_KEYS = (
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "StudyInstanceUID",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "ReferringPhysicianName",
    "RequestingService",
)


def workitem_uid(task_id: str) -> str:
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, f'Task/{task_id}').int}"


def _all(ds: Dataset, keyword: str) -> list[str]:
    return element_strings(ds.data_element(keyword)) if keyword in ds else []


def _first(ds: Dataset, keyword: str) -> str:
    values = _all(ds, keyword)
    return values[0] if values else ""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning or value
    return code


def _copy(src: Dataset, dst: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword in src:
            dst.add(src.data_element(keyword))  # type: ignore[arg-type]


def _codes(sps: Dataset, item: Dataset) -> list[Dataset]:
    for source, keyword in (
        (sps, "ScheduledProtocolCodeSequence"),
        (item, "RequestedProcedureCodeSequence"),
    ):
        if keyword in source and source.data_element(keyword).value:  # type: ignore[union-attr]
            return list(source.data_element(keyword).value)[:1]  # type: ignore[union-attr]
    return []


def _request(item: Dataset) -> Dataset:
    request = Dataset()
    _copy(item, request, REQUEST_KEYS)
    return request


def _station(sps: Dataset) -> list[Dataset]:
    names, aets = _all(sps, "ScheduledStationName"), _all(sps, "ScheduledStationAETitle")
    return [
        _code(ae, STATION_SCHEME, names[i] if i < len(names) else ae) for i, ae in enumerate(aets)
    ]


def workitem(task_id: str, item: Dataset) -> Dataset:
    """The UPS workitem for one MWL worklist item (crosswalk spec/ups-rs.md §1.2)."""
    seq: Any = item.get(0x00400100)
    sps = seq.value[0] if seq is not None and seq.value else Dataset()
    ups = Dataset()
    ups.SOPClassUID = "1.2.840.10008.5.1.4.34.6.1"
    ups.SOPInstanceUID = workitem_uid(task_id)
    _copy(item, ups, PATIENT_KEYS)
    priority = _first(item, "RequestedProcedurePriority").upper()
    ups.ScheduledProcedureStepPriority = PRIORITY.get(priority, "MEDIUM")
    label = _first(sps, "ScheduledProcedureStepDescription")
    ups.ProcedureStepLabel = label or _first(item, "RequestedProcedureDescription") or "SPS"
    ups.WorklistLabel = _first(sps, "ScheduledStationAETitle") or "FHIRMWL"
    ups.ScheduledStationNameCodeSequence = _station(sps)
    modality = _first(sps, "Modality")
    ups.ScheduledStationClassCodeSequence = [_code(modality, "DCM", modality)] if modality else []
    location = _first(sps, "ScheduledProcedureStepLocation")
    ups.ScheduledStationGeographicLocationCodeSequence = (
        [_code(location, STATION_SCHEME, location)] if location else []
    )
    performer = _first(sps, "ScheduledPerformingPhysicianName")
    human = Dataset()
    if performer:
        human.HumanPerformerName = performer
    ups.ScheduledHumanPerformersSequence = [human] if performer else []
    start = _first(sps, "ScheduledProcedureStepStartDate") + _first(
        sps, "ScheduledProcedureStepStartTime"
    )
    ups.ScheduledProcedureStepStartDateTime = start
    ups.ScheduledWorkitemCodeSequence = _codes(sps, item)
    ups.InputReadinessState = "READY"
    ups.InputInformationSequence = []
    ups.ReferencedRequestSequence = [_request(item)]
    status = _first(sps, "ScheduledProcedureStepStatus").upper()
    ups.ProcedureStepState = STATE.get(status, "SCHEDULED")
    return ups
