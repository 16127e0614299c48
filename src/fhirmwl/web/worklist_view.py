"""The worklist page's model: URL filters → the shared worklist query → sorted, paged rows.

Filters live in the URL (``?date=2026-12-01&to=…&station=CT01&modality=CT&status=requested&
patient=…&sort=start&dir=asc&page=2``) so a view can be bookmarked. Date, station, modality
and status become DICOM matching keys of one :class:`WorklistQuery` answered by the same
``StoreWorklistSource`` and matcher as a C-FIND, so the desk shows exactly what a modality
asking the same question gets. The patient text (name, ID or accession, any case, any part) is
a desk convenience finished on the matched rows. Sorting and paging happen on the matched rows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.errors import BadRequest
from fhirmwl.mapping.fhir_to_dicom.context import SPS_STATUS_FOR_TASK
from fhirmwl.web.render import dicom_date, dicom_time, person_name
from fhirmwl.worklist.query import WorklistQuery

SPS = "ScheduledProcedureStepSequence"
# The columns, in order: (key, header, DICOM keyword shown in the header's tooltip).
COLUMNS = (
    ("start", "Scheduled start", "ScheduledProcedureStepStartDate/Time"),
    ("accession", "Accession", "AccessionNumber"),
    ("patient", "Patient name", "PatientName"),
    ("patient_id", "Patient ID", "PatientID"),
    ("birth_date", "Birth date", "PatientBirthDate"),
    ("sex", "Sex", "PatientSex"),
    ("procedure", "Procedure", "RequestedProcedureDescription"),
    ("modality", "Modality", "Modality"),
    ("station", "Station AE", "ScheduledStationAETitle"),
    ("status", "SPS status", "ScheduledProcedureStepStatus"),
    ("priority", "Priority", "RequestedProcedurePriority"),
)
SORT_KEYS = frozenset(c[0] for c in COLUMNS)
PAGE_SIZES = (25, 50, 100, 200)
SPS_STATUSES = ("SCHEDULED", "READY", "STARTED")
_RETURN_KEYS = (
    "AccessionNumber",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "RequestedProcedureDescription",
    "RequestedProcedurePriority",
)
_SPS_RETURN_KEYS = (
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepID",
)


def _iso_date(name: str, value: str) -> str:
    try:
        return dt.date.fromisoformat(value).strftime("%Y%m%d")
    except ValueError:
        raise BadRequest(f"{name} must be a date like 2026-12-01, got {value!r}") from None


def _sps_status(value: str) -> str:
    """A Task status (``requested``) or an SPS status (``SCHEDULED``) → the SPS status."""
    mapped = SPS_STATUS_FOR_TASK.get(value.lower()) or value.upper()
    if mapped not in SPS_STATUSES:
        known = ", ".join([*SPS_STATUS_FOR_TASK, *SPS_STATUSES])
        raise BadRequest(f"status must be one of {known}, got {value!r}")
    return mapped


@dataclass(frozen=True)
class WorklistFilter:
    date: str = ""  # ISO date; empty = any day
    to: str = ""  # ISO date ending a range (inclusive)
    station: str = ""
    modality: str = ""
    status: str = ""
    patient: str = ""
    sort: str = "start"
    dir: str = "asc"
    page: int = 1
    size: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, str], today: dt.date) -> WorklistFilter:
        """Parse the URL query; ``date`` absent means today (in the worklist's time zone)."""
        values: dict[str, Any] = {f.name: params.get(f.name, "").strip() for f in fields(cls)}
        if "date" not in params:
            values["date"] = today.isoformat()
        for name in ("date", "to"):
            if values[name]:
                _iso_date(name, values[name])
        if values["status"]:
            _sps_status(values["status"])
        if values["sort"] not in SORT_KEYS:
            values["sort"] = "start"
        values["dir"] = "desc" if values["dir"] == "desc" else "asc"
        for name, default in (("page", 1), ("size", 50)):
            try:
                values[name] = max(1, int(values[name] or default))
            except ValueError:
                raise BadRequest(f"{name} must be a whole number") from None
        values["size"] = min(values["size"], max(PAGE_SIZES))
        values["modality"] = values["modality"].upper()
        return cls(**values)

    def params(self) -> dict[str, str]:
        """The URL query of this view (``date`` always present, possibly empty)."""
        out = {f.name: str(getattr(self, f.name)) for f in fields(self)}
        defaults = WorklistFilter()
        return {k: v for k, v in out.items() if k == "date" or v != str(getattr(defaults, k))}

    def query(self) -> WorklistQuery:
        """The DICOM query of the filters (return keys: the page's columns)."""
        keys = {k: "" for k in _RETURN_KEYS}
        keys.update({f"{SPS}.{k}": "" for k in _SPS_RETURN_KEYS})
        start = ""
        if self.date:
            low = _iso_date("date", self.date)
            start = f"{low}-{_iso_date('to', self.to)}" if self.to else low
        elif self.to:
            start = f"-{_iso_date('to', self.to)}"
        keys[f"{SPS}.ScheduledProcedureStepStartDate"] = start
        keys[f"{SPS}.ScheduledStationAETitle"] = self.station
        keys[f"{SPS}.Modality"] = self.modality
        keys[f"{SPS}.ScheduledProcedureStepStatus"] = (
            _sps_status(self.status) if self.status else ""
        )
        return WorklistQuery.from_keywords(keys)


@dataclass(frozen=True)
class WorklistRow:
    task_id: str
    start: str
    accession: str
    patient: str
    patient_id: str
    birth_date: str
    sex: str
    procedure: str
    modality: str
    station: str
    status: str
    priority: str

    @classmethod
    def from_item(cls, task_id: str, item: Dataset) -> WorklistRow:
        seq = item.get(SPS)
        sps = seq[0] if seq else Dataset()
        station = sps.get("ScheduledStationAETitle", "")
        station_text = "\\".join(station) if isinstance(station, list | tuple) else str(station)
        sps_date = dicom_date(sps.get("ScheduledProcedureStepStartDate", ""))
        return cls(
            task_id=task_id,
            start=f"{sps_date} {dicom_time(sps.get('ScheduledProcedureStepStartTime', ''))}",
            accession=str(item.get("AccessionNumber", "") or ""),
            patient=person_name(item.get("PatientName", "")),
            patient_id=str(item.get("PatientID", "") or ""),
            birth_date=dicom_date(item.get("PatientBirthDate", "")),
            sex=str(item.get("PatientSex", "") or ""),
            procedure=str(
                item.get("RequestedProcedureDescription")
                or sps.get("ScheduledProcedureStepDescription")
                or ""
            ),
            modality=str(sps.get("Modality", "") or ""),
            station=station_text,
            status=str(sps.get("ScheduledProcedureStepStatus", "") or ""),
            priority=str(item.get("RequestedProcedurePriority", "") or ""),
        )

    def matches_text(self, text: str) -> bool:
        needle = text.casefold()
        return any(needle in v.casefold() for v in (self.patient, self.patient_id, self.accession))


@dataclass(frozen=True)
class WorklistPage:
    filter: WorklistFilter
    rows: list[WorklistRow]
    total: int
    pages: int


def worklist_page(source: Any, flt: WorklistFilter) -> WorklistPage:
    """Rows of one page; ``source`` is the store's ``StoreWorklistSource``."""
    rows = [WorklistRow.from_item(tid, item) for tid, item in source.find_with_ids(flt.query())]
    if flt.patient:
        rows = [r for r in rows if r.matches_text(flt.patient)]
    rows.sort(key=lambda r: (str(getattr(r, flt.sort)).casefold(), r.start, r.task_id))
    if flt.dir == "desc":
        rows.reverse()
    pages = max(1, math.ceil(len(rows) / flt.size))
    page = min(flt.page, pages)
    chunk = rows[(page - 1) * flt.size : page * flt.size]
    return WorklistPage(replace(flt, page=page), chunk, len(rows), pages)
