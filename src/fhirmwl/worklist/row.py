"""The worklist index: one denormalised row per Scheduled Procedure Step (Task).

A C-FIND must not assemble FHIR graphs at query time (design.md "The worklist index"). The store
keeps this table in the same transaction as every write that affects a Task's graph; the row is
computed here by a pure function from the already mapped DICOM item, so the columns can never
disagree with what a modality receives. The DDL is plain SQL valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from fhirmwl.worklist.jsoncodec import item_to_json
from fhirmwl.worklist.query import SPS_SEQUENCE
from fhirmwl.worklist.values import element_strings, norm_date, norm_pn, norm_time

# station_aet of an item scheduled on several stations (AE titles cannot contain a backslash):
# such rows are selected for every station key and decided by the Python matcher.
MULTI_STATION = "\\"

ROW_COLUMNS = (
    "task_id",
    "station_aet",
    "modality",
    "sps_start_utc",
    "sps_start_date",
    "sps_start_time",
    "sps_status",
    "sps_id",
    "patient_id",
    "issuer_of_patient_id",
    "patient_name_norm",
    "accession_number",
    "requested_procedure_id",
    "study_instance_uid",
    "performing_physician_norm",
    "item_json",
)

WORKLIST_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS worklist (
    task_id TEXT PRIMARY KEY,
    station_aet TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    sps_start_utc TEXT,
    sps_start_date TEXT NOT NULL DEFAULT '',
    sps_start_time TEXT NOT NULL DEFAULT '',
    sps_status TEXT NOT NULL DEFAULT '',
    sps_id TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id TEXT NOT NULL DEFAULT '',
    patient_name_norm TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    requested_procedure_id TEXT NOT NULL DEFAULT '',
    study_instance_uid TEXT NOT NULL DEFAULT '',
    performing_physician_norm TEXT NOT NULL DEFAULT '',
    item_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS worklist_station_start"
    " ON worklist (station_aet, sps_start_date, sps_start_time)",
    "CREATE INDEX IF NOT EXISTS worklist_start ON worklist (sps_start_date, sps_start_time)",
    "CREATE INDEX IF NOT EXISTS worklist_patient_id ON worklist (patient_id)",
    "CREATE INDEX IF NOT EXISTS worklist_accession ON worklist (accession_number)",
]


def _first(ds: Dataset, keyword: str) -> str:
    values = element_strings(ds.data_element(keyword)) if keyword in ds else []
    return values[0] if values else ""


def _all(ds: Dataset, keyword: str) -> list[str]:
    return element_strings(ds.data_element(keyword)) if keyword in ds else []


def station_titles(item: Dataset) -> list[str]:
    """Scheduled Station AE Titles of the item's (first) Scheduled Procedure Step."""
    sps_seq = item.get(SPS_SEQUENCE)
    sps = sps_seq.value[0] if sps_seq is not None and sps_seq.value else Dataset()
    return _all(sps, "ScheduledStationAETitle")


def worklist_row(
    item: Dataset,
    task_id: str,
    *,
    tz: ZoneInfo | None = None,
    sps_start: datetime | None = None,
) -> dict[str, Any]:
    """Index row for one worklist item.

    ``sps_start`` is the instant from ``Task.requestedPeriod.start`` when known; otherwise the
    local SPS Start Date/Time of the item is read in ``tz`` (UTC when not given). Only the first
    Scheduled Procedure Step item is indexed: the broker builds exactly one per item.
    """
    sps_seq = item.get(SPS_SEQUENCE)
    sps = sps_seq.value[0] if sps_seq is not None and sps_seq.value else Dataset()
    stations = station_titles(item)
    date = norm_date(_first(sps, "ScheduledProcedureStepStartDate"))
    raw_time = _first(sps, "ScheduledProcedureStepStartTime")
    time = norm_time(raw_time) if raw_time else ""
    return {
        "task_id": task_id,
        "station_aet": MULTI_STATION if len(stations) > 1 else (stations[0] if stations else ""),
        "modality": _first(sps, "Modality"),
        "sps_start_utc": _utc(date, time, tz, sps_start),
        "sps_start_date": date,
        "sps_start_time": time,
        "sps_status": _first(sps, "ScheduledProcedureStepStatus"),
        "sps_id": _first(sps, "ScheduledProcedureStepID"),
        "patient_id": _first(item, "PatientID"),
        "issuer_of_patient_id": _first(item, "IssuerOfPatientID"),
        "patient_name_norm": norm_pn(_first(item, "PatientName")),
        "accession_number": _first(item, "AccessionNumber"),
        "requested_procedure_id": _first(item, "RequestedProcedureID"),
        "study_instance_uid": _first(item, "StudyInstanceUID"),
        "performing_physician_norm": norm_pn(_first(sps, "ScheduledPerformingPhysicianName")),
        "item_json": item_to_json(item),
    }


def _utc(date: str, time: str, tz: ZoneInfo | None, start: datetime | None) -> str | None:
    if start is not None:
        return start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if len(date) != 8:
        return None
    t = (time or "000000")[:6]
    try:
        local = datetime.strptime(date + t, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return local.replace(tzinfo=tz or UTC).astimezone(UTC).isoformat().replace("+00:00", "Z")
