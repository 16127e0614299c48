"""The worklist index: one denormalised row per Scheduled Procedure Step (Task).

A C-FIND must not assemble FHIR graphs at query time (design.md "The worklist index"). The store
keeps this table in the same transaction as every write that affects a Task's graph; the row is
computed here by a pure function from the already mapped DICOM item, so the columns can never
disagree with what a modality receives. The DDL is plain SQL valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from fhirmwl.worklist.jsoncodec import dataset_to_dict
from fhirmwl.worklist.values import json_strings, norm_date, norm_pn, norm_time

SPS_SEQUENCE = "00400100"  # Scheduled Procedure Step Sequence
_AET = "00400001"  # Scheduled Station AE Title

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


def _first(item: dict[str, Any], tag: str) -> str:
    values = json_strings(item.get(tag))
    return values[0] if values else ""


def _sps(item: dict[str, Any]) -> dict[str, Any]:
    steps = (item.get(SPS_SEQUENCE) or {}).get("Value") or []
    return steps[0] if steps else {}


def _as_json(item: Dataset | dict[str, Any]) -> dict[str, Any]:
    return item if isinstance(item, dict) else dataset_to_dict(item)


def station_titles(item: Dataset | dict[str, Any]) -> list[str]:
    """Scheduled Station AE Titles of the item's (first) Scheduled Procedure Step."""
    return json_strings(_sps(_as_json(item)).get(_AET))


def worklist_row(
    item: Dataset | dict[str, Any],
    task_id: str,
    *,
    tz: ZoneInfo | None = None,
    sps_start: datetime | None = None,
) -> dict[str, Any]:
    """Index row for one worklist item (a Dataset, or its DICOM JSON as the item builder makes
    it).

    ``sps_start`` is the instant from ``Task.requestedPeriod.start`` when known; otherwise the
    local SPS Start Date/Time of the item is read in ``tz`` (UTC when not given). Only the first
    Scheduled Procedure Step item is indexed: the broker builds exactly one per item.
    """
    data = _as_json(item)
    sps = _sps(data)
    stations = json_strings(sps.get(_AET))
    date = norm_date(_first(sps, "00400002"))  # Scheduled Procedure Step Start Date
    raw_time = _first(sps, "00400003")  # Scheduled Procedure Step Start Time
    time = norm_time(raw_time) if raw_time else ""
    return {
        "task_id": task_id,
        "station_aet": MULTI_STATION if len(stations) > 1 else (stations[0] if stations else ""),
        "modality": _first(sps, "00080060"),
        "sps_start_utc": _utc(date, time, tz, sps_start),
        "sps_start_date": date,
        "sps_start_time": time,
        "sps_status": _first(sps, "00400020"),
        "sps_id": _first(sps, "00400009"),
        "patient_id": _first(data, "00100020"),
        "issuer_of_patient_id": _first(data, "00100021"),
        "patient_name_norm": norm_pn(_first(data, "00100010")),
        "accession_number": _first(data, "00080050"),
        "requested_procedure_id": _first(data, "00401001"),
        "study_instance_uid": _first(data, "0020000D"),
        "performing_physician_norm": norm_pn(_first(sps, "00400006")),
        "item_json": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
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
