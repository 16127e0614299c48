"""Translation of a :class:`WorklistQuery` into a WHERE clause over the worklist index.

The clause uses only indexed/denormalised columns and ``?`` placeholders (the store converts
them for PostgreSQL). It selects a superset of the matching rows — never fewer — and
:func:`fhirmwl.worklist.match.matches` finishes the decision on the rows it returns (``?`` in a
name, PN component groups, keys without a column). Dates and times are compared as normalised
strings (``YYYYMMDD`` and ``HHMMSS[.F]``) whose order equals time order.
"""

from __future__ import annotations

from fhirmwl.worklist.match import time_bounds
from fhirmwl.worklist.query import (
    SCHEDULED_STATION_AE,
    SPS_START_DATE,
    SPS_START_TIME,
    KeyMatch,
    MatchKind,
    WorklistQuery,
)
from fhirmwl.worklist.row import MULTI_STATION
from fhirmwl.worklist.values import like_escape, norm_pn, wildcard_to_like

TOP_COLUMNS = {
    0x00100020: "patient_id",
    0x00100021: "issuer_of_patient_id",
    0x00080050: "accession_number",
    0x00401001: "requested_procedure_id",
    0x0020000D: "study_instance_uid",
}
SPS_COLUMNS = {
    0x00080060: "modality",
    0x00400020: "sps_status",
    0x00400009: "sps_id",
}
PN_COLUMNS = {0x00100010: "patient_name_norm", 0x00400006: "performing_physician_norm"}


def query_to_sql(q: WorklistQuery) -> tuple[str, list[str]]:
    """``(where_sql, params)`` pre-filtering the ``worklist`` table for ``q``."""
    clauses: list[str] = []
    params: list[str] = []

    def add(sql: str | None, values: list[str]) -> None:
        if sql:
            clauses.append(sql)
            params.extend(values)

    for tag, column in TOP_COLUMNS.items():
        add(*_text_clause(column, q.key(tag)))
    add(*_pn_clause("patient_name_norm", q.key(0x00100010)))
    sps = q.sps
    if sps is not None:
        for tag, column in SPS_COLUMNS.items():
            add(*_text_clause(column, sps.key(tag)))
        add(*_pn_clause("performing_physician_norm", sps.key(0x00400006)))
        add(*_station_clause(sps.key(SCHEDULED_STATION_AE)))
        add(*_start_clause(sps.key(SPS_START_DATE), sps.key(SPS_START_TIME)))
    return (" AND ".join(clauses) if clauses else "1=1"), params


def _active(key: KeyMatch | None) -> bool:
    return key is not None and key.kind not in (MatchKind.UNIVERSAL, MatchKind.SEQUENCE)


def _text_clause(column: str, key: KeyMatch | None) -> tuple[str | None, list[str]]:
    if key is None or not _active(key):
        return None, []
    if key.kind is MatchKind.WILDCARD:
        likes = [wildcard_to_like(v) for v in key.values]
        sql = " OR ".join(f"{column} LIKE ? ESCAPE '!'" for _ in likes)
        return f"({sql})", likes
    marks = ", ".join("?" for _ in key.values)
    return f"{column} IN ({marks})", list(key.values)


def _pn_clause(column: str, key: KeyMatch | None) -> tuple[str | None, list[str]]:
    if key is None or not _active(key):
        return None, []
    patterns: list[str] = []
    for value in key.values:
        if key.kind is MatchKind.WILDCARD:
            core = wildcard_to_like(value.upper())
        else:
            core = like_escape(norm_pn(value))
        if "=" in value:
            patterns.append(core)
        else:  # the key may match any one component group of the entity
            patterns += [core, core + "=%", "%=" + core, "%=" + core + "=%"]
    sql = " OR ".join(f"{column} LIKE ? ESCAPE '!'" for _ in patterns)
    return f"({sql})", patterns


def _station_clause(key: KeyMatch | None) -> tuple[str | None, list[str]]:
    if key is None or not _active(key):
        return None, []
    if key.kind is MatchKind.WILDCARD:
        sql, params = _text_clause("station_aet", key)
        return f"({sql} OR station_aet = ?)", [*params, MULTI_STATION]
    # one IN list keeps the (station_aet, sps_start_date, sps_start_time) index usable
    marks = ", ".join("?" for _ in key.values)
    return f"station_aet IN ({marks}, ?)", [*key.values, MULTI_STATION]


def _range_sql(column: str, key: KeyMatch) -> tuple[str, list[str]]:
    if key.kind is MatchKind.RANGE:
        parts, params = [f"{column} <> ''"], []
        if key.low is not None:
            parts.append(f"{column} >= ?")
            params.append(key.low)
        if key.high is not None:
            parts.append(f"{column} <= ?")
            params.append(key.high)
        return "(" + " AND ".join(parts) + ")", params
    marks = ", ".join("?" for _ in key.values)
    return f"{column} IN ({marks})", list(key.values)


def _start_clause(date: KeyMatch | None, time: KeyMatch | None) -> tuple[str | None, list[str]]:
    date_on, time_on = date is not None and _active(date), time is not None and _active(time)
    if date_on and not time_on:
        assert date is not None
        return _range_sql("sps_start_date", date)
    if time_on and not date_on:
        assert time is not None
        return _range_sql("sps_start_time", time)
    if not date_on or date is None or time is None:
        return None, []
    low, high = time_bounds(date, time)
    parts, params = ["sps_start_date <> ''", "sps_start_time <> ''"], []
    if low is not None:
        # the first, redundant comparison lets the (station, date, time) index bound the scan
        parts.append("sps_start_date >= ?")
        parts.append("(sps_start_date > ? OR (sps_start_date = ? AND sps_start_time >= ?))")
        params += [low[0], low[0], low[0], low[1]]
    if high is not None:
        parts.append("sps_start_date <= ?")
        parts.append("(sps_start_date < ? OR (sps_start_date = ? AND sps_start_time <= ?))")
        params += [high[0], high[0], high[0], high[1]]
    return "(" + " AND ".join(parts) + ")", params
