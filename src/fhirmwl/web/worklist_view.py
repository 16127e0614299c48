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
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pydicom.datadict import tag_for_keyword

from fhirmwl.errors import BadRequest
from fhirmwl.mapping.fhir_to_dicom.context import SPS_STATUS_FOR_TASK
from fhirmwl.web.render import dicom_date, dicom_time, person_name
from fhirmwl.worklist.match import matches
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
_HEX = {
    kw: f"{tag_for_keyword(kw):08X}"
    for kw in (
        SPS,
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "RequestedProcedureDescription",
        "RequestedProcedurePriority",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStatus",
    )
}


def _text(data: dict[str, Any], keyword: str) -> str:
    """One attribute of a DICOM JSON object as text (multiple values joined by ``\\``; a PN
    as ``alphabetic=ideographic=phonetic``)."""
    values = (data.get(_HEX[keyword]) or {}).get("Value") or []
    out = []
    for v in values:
        if isinstance(v, dict):
            v = "=".join(v.get(g, "") for g in ("Alphabetic", "Ideographic", "Phonetic"))
            v = v.rstrip("=")
        out.append(str(v))
    return "\\".join(out)


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
        """The DICOM matching keys of the filters (none: the whole worklist)."""
        keys: dict[str, str] = {}
        if self.date:
            low = _iso_date("date", self.date)
            keys[f"{SPS}.ScheduledProcedureStepStartDate"] = (
                f"{low}-{_iso_date('to', self.to)}" if self.to else low
            )
        elif self.to:
            keys[f"{SPS}.ScheduledProcedureStepStartDate"] = f"-{_iso_date('to', self.to)}"
        if self.station:
            keys[f"{SPS}.ScheduledStationAETitle"] = self.station
        if self.modality:
            keys[f"{SPS}.Modality"] = self.modality
        if self.status:
            keys[f"{SPS}.ScheduledProcedureStepStatus"] = _sps_status(self.status)
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
    def from_json(cls, task_id: str, data: dict[str, Any]) -> WorklistRow:
        """The row of one stored item (DICOM JSON, read without building a Dataset)."""
        sps: dict[str, Any] = next(iter(data.get(_HEX[SPS], {}).get("Value") or []), {})
        return cls(
            task_id=task_id,
            start=f"{dicom_date(_text(sps, 'ScheduledProcedureStepStartDate'))} "
            f"{dicom_time(_text(sps, 'ScheduledProcedureStepStartTime'))}",
            accession=_text(data, "AccessionNumber"),
            patient=person_name(_text(data, "PatientName")),
            patient_id=_text(data, "PatientID"),
            birth_date=dicom_date(_text(data, "PatientBirthDate")),
            sex=_text(data, "PatientSex"),
            procedure=_text(data, "RequestedProcedureDescription")
            or _text(sps, "ScheduledProcedureStepDescription"),
            modality=_text(sps, "Modality"),
            station=_text(sps, "ScheduledStationAETitle"),
            status=_text(sps, "ScheduledProcedureStepStatus"),
            priority=_text(data, "RequestedProcedurePriority"),
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


def matching_rows(source: Any, q: WorklistQuery) -> list[WorklistRow]:
    """Every step the C-FIND ``q`` returns: the source's SQL pre-filter, then the shared
    matcher on the stored DICOM JSON; the row is read from the same JSON (a full Dataset per
    item cost about 2 ms, too slow for a day of 500 steps)."""
    rows = []
    universal = q.is_universal()
    for task_id, item_json in source.rows(q):
        data = json.loads(item_json)
        if universal or matches(q, data):
            rows.append(WorklistRow.from_json(task_id, data))
    return rows


def worklist_page(source: Any, flt: WorklistFilter) -> WorklistPage:
    """Rows of one page; ``source`` is the store's ``StoreWorklistSource``."""
    rows = matching_rows(source, flt.query())
    if flt.patient:
        rows = [r for r in rows if r.matches_text(flt.patient)]
    rows.sort(key=lambda r: (str(getattr(r, flt.sort)).casefold(), r.start, r.task_id))
    if flt.dir == "desc":
        rows.reverse()
    pages = max(1, math.ceil(len(rows) / flt.size))
    page = min(flt.page, pages)
    chunk = rows[(page - 1) * flt.size : page * flt.size]
    return WorklistPage(replace(flt, page=page), chunk, len(rows), pages)
