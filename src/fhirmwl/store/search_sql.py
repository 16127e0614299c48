"""Translate a parsed ``SearchQuery`` into one parameterised SQL statement.

Every criterion becomes ``r.rid IN (SELECT rid FROM idx_… WHERE pid = ? AND …)`` so that both
SQLite and PostgreSQL drive it from the ``(pid, value)`` index and reach the resource rows by
their integer key (migration 220); ``pid`` numbers the (resource type, parameter) pair.
Values are validated here, where their type is known: a malformed date or token is a 400, never a
silently empty result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fhirmwl.errors import BadRequest, NotSupported
from fhirmwl.fhir.dates import date_range
from fhirmwl.fhir.indexing import normalize
from fhirmwl.fhir.search import Criterion, SearchQuery
from fhirmwl.fhir.search_params import SEARCH_PARAMS, SearchParam, param_for

_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
_FMT = "%Y-%m-%dT%H:%M:%S.%f"
# (resource type, parameter name) → pid, None when nothing was ever indexed under it
Pids = Callable[[str, str], int | None]


def _pid(pids: Pids, res_type: str, name: str) -> int:
    """The parameter's number; -1 (no row has it) for one never indexed."""
    pid = pids(res_type, name)
    return -1 if pid is None else pid


def _ref_aliases() -> dict[tuple[str, str], tuple[str, str]]:
    """Reference parameters whose rows another parameter's rows already hold: ``patient``
    (path ``subject[Patient]``) is exactly the ``subject`` rows (path ``subject``) whose target
    is a Patient. (resource type, alias) → (base parameter, target type)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for res_type, params in SEARCH_PARAMS.items():
        by_path = {p.paths: p.name for p in params.values() if p.type == "reference"}
        for p in params.values():
            if p.type != "reference" or len(p.paths) != 1 or not p.paths[0].endswith("]"):
                continue
            path, _, only = p.paths[0][:-1].partition("[")
            base = by_path.get((path,))
            if base is not None and only:
                out[(res_type, p.name)] = (base, only)
    return out


# The store writes no rows for these (``Tx._index``); searches read the base parameter's.
REF_ALIASES = _ref_aliases()


def param_sql(pids: Pids, res_type: str, name: str, table: str = "") -> tuple[str, list[Any]]:
    """``pid = ?`` selecting one parameter's index rows (columns of ``table.`` when given); a
    reference alias is its base parameter's rows with the alias's target type."""
    alias = REF_ALIASES.get((res_type, name))
    if alias is None:
        return f"{table}pid = ?", [_pid(pids, res_type, name)]
    base, target = alias
    return f"{table}pid = ? AND {table}target_type = ?", [_pid(pids, res_type, base), target]


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _date_value(raw: str, name: str) -> tuple[str, str, str]:
    """``(prefix, lo, hi)`` of a date search value such as ``ge2024-05``; 400 when malformed."""
    prefix = raw[:2] if raw[:2] in _PREFIXES else "eq"
    value = raw[2:] if raw[:2] in _PREFIXES else raw
    try:
        qlo, qhi = date_range(value)
    except ValueError:
        raise BadRequest(f"invalid date {raw!r} for parameter {name!r}", expression=name) from None
    return prefix, qlo, qhi


def _date_cond(lo_col: str, hi_col: str, raw: str, name: str) -> tuple[str, list[Any]]:
    prefix, qlo, qhi = _date_value(raw, name)
    if prefix == "eq":
        return f"({lo_col} >= ? AND {hi_col} <= ?)", [qlo, qhi]
    if prefix == "ne":
        return f"NOT ({lo_col} >= ? AND {hi_col} <= ?)", [qlo, qhi]
    if prefix == "gt":
        return f"{hi_col} > ?", [qhi]
    if prefix == "lt":
        return f"{lo_col} < ?", [qlo]
    # ge: the target ends after the search range, or lies within it. Written with a leading
    # sargable bound (hi >= qlo / lo <= qhi) so the (param, hi) / (param, lo) indexes apply.
    if prefix == "ge":
        return f"({hi_col} >= ? AND ({hi_col} > ? OR {lo_col} >= ?))", [qlo, qhi, qlo]
    if prefix == "le":
        return f"({lo_col} <= ? AND ({lo_col} < ? OR {hi_col} <= ?))", [qhi, qlo, qhi]
    if prefix == "sa":
        return f"{lo_col} > ?", [qhi]
    if prefix == "eb":
        return f"{hi_col} < ?", [qlo]
    # ap: within 10 % of the distance to now, at least one day either side
    lo_dt, hi_dt = datetime.strptime(qlo, _FMT), datetime.strptime(qhi, _FMT)
    now = datetime.now(UTC).replace(tzinfo=None)
    slack = max(abs(now - lo_dt) * 0.1, timedelta(days=1))
    return f"({hi_col} >= ? AND {lo_col} <= ?)", [
        (lo_dt - slack).strftime(_FMT),
        (hi_dt + slack).strftime(_FMT),
    ]


def _point_cond(col: str, raw: str, name: str) -> tuple[str, list[Any]]:
    """Prefix semantics for instants (``point`` parameters): bounds on one indexed column."""
    prefix, qlo, qhi = _date_value(raw, name)
    if prefix in ("eq", "ap"):
        return f"({col} >= ? AND {col} <= ?)", [qlo, qhi]
    if prefix == "ne":
        return f"NOT ({col} >= ? AND {col} <= ?)", [qlo, qhi]
    if prefix in ("gt", "sa"):
        return f"{col} > ?", [qhi]
    if prefix in ("lt", "eb"):
        return f"{col} < ?", [qlo]
    if prefix == "ge":
        return f"{col} >= ?", [qlo]
    return f"{col} <= ?", [qhi]  # le


def _token_cond(value: str, modifier: str | None, name: str) -> tuple[str, list[Any]]:
    if modifier == "of-type":
        parts = value.split("|")
        if len(parts) != 3 or not all(parts):
            raise BadRequest(f"{name}:of-type needs system|code|value, got {value!r}")
        return "(type_system = ? AND type_code = ? AND code = ?)", parts
    if "|" not in value:
        return "code = ?", [value]
    system, _, code = value.partition("|")
    if not system:
        return "(code = ? AND system IS NULL)", [code]
    if not code:
        return "system = ?", [system]
    return "(system = ? AND code = ?)", [system, code]


def _ref_cond(value: str, param: SearchParam, modifier: str | None) -> tuple[str, list[Any]]:
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2:
        return "(target_type = ? AND target_id = ?)", [parts[-2], parts[-1]]
    if modifier:
        return "(target_type = ? AND target_id = ?)", [modifier, value]
    return "target_id = ?", [value]


def _value_sql(
    pids: Pids,
    res_type: str,
    param: SearchParam,
    modifier: str | None,
    values: tuple[str, ...],
) -> tuple[str, list[Any], str]:
    """SQL selecting the key of ``res_type`` rows matching any of ``values``, and which key
    it is: ``rid`` (index tables) or ``res_id`` (the worklist index)."""
    name = param.name
    if param.worklist_column is not None:
        return (*_worklist_sql(param.worklist_column, modifier, values, name), "res_id")
    conds: list[str] = []
    args: list[Any] = []
    if param.type in ("token", "uri"):
        table = "idx_token"
        for v in values:
            c, a = _token_cond(v, modifier, name) if param.type == "token" else ("code = ?", [v])
            conds.append(c)
            args += a
    elif param.type == "string":
        table = "idx_string"
        for v in values:
            if modifier == "exact":
                conds.append("raw = ?")
                args.append(v)
            elif modifier == "contains":
                conds.append("value LIKE ? ESCAPE '\\'")
                args.append(f"%{like_escape(normalize(v))}%")
            elif modifier is None:
                conds.append("value LIKE ? ESCAPE '\\'")
                args.append(f"{like_escape(normalize(v))}%")
            else:
                raise NotSupported(f"modifier :{modifier} is not supported on {name}")
    elif param.type == "date":
        table = "idx_date"
        for v in values:
            c, a = _point_cond("lo", v, name) if param.point else _date_cond("lo", "hi", v, name)
            conds.append(c)
            args += a
    elif param.type == "reference":
        table = "idx_ref"
        for v in values:
            c, a = _ref_cond(v, param, modifier)
            conds.append(c)
            args += a
    else:  # pragma: no cover - registry only uses the types above
        raise NotSupported(f"search type {param.type}")
    which, which_args = param_sql(pids, res_type, name)
    sql = f"SELECT rid FROM {table} WHERE {which} AND ({' OR '.join(conds)})"
    return sql, [*which_args, *args], "rid"


def _worklist_sql(
    column: str, modifier: str | None, values: tuple[str, ...], name: str
) -> tuple[str, list[Any]]:
    """Task ids from the worklist index; a token's system part is ignored (AE titles have none).
    Steps on several stations are found through ``worklist_station`` (their row holds a
    sentinel), as C-FIND finds them."""
    if modifier is not None:
        raise NotSupported(f"modifier :{modifier} is not supported on {name}")
    codes = [v.partition("|")[2] if "|" in v else v for v in values]
    marks = ", ".join("?" for _ in codes)
    sql = f"SELECT task_id AS res_id FROM worklist WHERE {column} IN ({marks})"
    if column == "station_aet":
        sql += (
            f" UNION SELECT task_id AS res_id FROM worklist_station WHERE station_aet IN ({marks})"
        )
        return sql, [*codes, *codes]
    return sql, codes


_TABLE = {
    "token": "idx_token",
    "uri": "idx_token",
    "string": "idx_string",
    "date": "idx_date",
    "reference": "idx_ref",
}


def _id_or_updated_sql(c: Criterion, id_col: str, lu_col: str) -> tuple[str, list[Any]]:
    if c.name == "_id":
        return f"{id_col} IN ({','.join('?' * len(c.values))})", list(c.values)
    conds, args = [], []
    for v in c.values:
        cond, a = _date_cond(lu_col, lu_col, v, "_lastUpdated")
        conds.append(cond)
        args += a
    return f"({' OR '.join(conds)})", args


def _chain_sql(pids: Pids, c: Criterion) -> tuple[str, list[Any]]:
    last_type = c.chain[-1][2]
    if c.param is None:
        cond, args = _id_or_updated_sql(c, "res_id", "lu")
        inner = f"SELECT res_id FROM resource WHERE res_type = ? AND deleted = 0 AND {cond}"
        args = [last_type, *args]
    else:
        inner, args, key = _value_sql(pids, last_type, c.param, c.modifier, c.values)
        if key == "rid":  # references name their target by id: from rid to res_id
            inner = f"SELECT res_id FROM resource WHERE rid IN ({inner})"
    for n, (source, param, target) in enumerate(reversed(c.chain)):
        column = "rid" if n == len(c.chain) - 1 else "res_id"
        which, which_args = param_sql(pids, source, param.name)
        inner = (
            f"SELECT rid FROM idx_ref WHERE {which} AND target_type = ? AND target_id IN ({inner})"
        )
        if column == "res_id":
            inner = f"SELECT res_id FROM resource WHERE rid IN ({inner})"
        args = [*which_args, target, *args]
    return f"r.rid IN ({inner})", args


def _criterion_sql(pids: Pids, res_type: str, c: Criterion) -> tuple[str, list[Any]]:
    if c.chain:
        return _chain_sql(pids, c)
    if c.param is None:
        return _id_or_updated_sql(c, "r.res_id", "r.lu")
    param = c.param
    if c.modifier == "missing" and param.worklist_column is None:
        if c.values[0] not in ("true", "false"):
            raise BadRequest(f"{c.name}:missing must be true or false")
        op = "NOT IN" if c.values[0] == "true" else "IN"
        which, which_args = param_sql(pids, res_type, param.name)
        sub = f"SELECT rid FROM {_TABLE[param.type]} WHERE {which}"
        return f"r.rid {op} ({sub})", which_args
    negate = c.modifier == "not"
    modifier = None if negate else c.modifier
    if modifier and param.type == "reference" and modifier not in param.targets:
        raise NotSupported(f"modifier :{modifier} is not supported on {c.name}")
    if modifier and param.type == "token" and modifier != "of-type":
        raise NotSupported(f"modifier :{modifier} is not supported on {c.name}")
    sub, args, key = _value_sql(pids, res_type, param, modifier, c.values)
    return f"r.{key} {'NOT IN' if negate else 'IN'} ({sub})", args


def _order_sql(pids: Pids, q: SearchQuery) -> tuple[str, list[Any]]:
    terms: list[str] = []
    args: list[Any] = []
    for name, desc in q.sort:
        direction = "DESC" if desc else "ASC"
        if name == "_id":
            terms.append(f"r.res_id {direction}")
        elif name == "_lastUpdated":
            terms.append(f"r.lu {direction}")
        else:
            param = param_for(q.resource_type, name)
            assert param is not None
            col = {
                "date": "lo",
                "string": "value",
                "token": "code",
                "uri": "code",
                "reference": "target_id",
            }[param.type]
            agg = "MAX" if desc else "MIN"
            which, which_args = param_sql(pids, q.resource_type, name, "s.")
            terms.append(
                f"(SELECT {agg}({col}) FROM {_TABLE[param.type]} s WHERE s.rid = r.rid "
                f"AND {which}) {direction}"
            )
            args += which_args
    terms.append("r.res_id ASC")
    return " ORDER BY " + ", ".join(terms), args


def _merged_dates(pids: Pids, res_type: str, criteria: list[Criterion]) -> tuple[str, list[Any]]:
    """Several AND-ed criteria on one date parameter (``ge…&lt…``) as one index range scan.

    Equivalent to one subquery per criterion because every date parameter we index holds one
    value per resource (see search_params.py).
    """
    param = criteria[0].param
    assert param is not None
    conds: list[str] = []
    args: list[Any] = []
    for c in criteria:
        one = [
            _point_cond("lo", v, c.name) if param.point else _date_cond("lo", "hi", v, c.name)
            for v in c.values
        ]
        conds.append("(" + " OR ".join(sql for sql, _ in one) + ")")
        args += [a for _, vals in one for a in vals]
    sub = f"SELECT rid FROM idx_date WHERE pid = ? AND {' AND '.join(conds)}"
    return f"r.rid IN ({sub})", [_pid(pids, res_type, param.name), *args]


def build_where(q: SearchQuery, pids: Pids) -> tuple[str, list[Any]]:
    where = ["r.res_type = ?", "r.deleted = 0"]
    args: list[Any] = [q.resource_type]
    dates: dict[str, list[Criterion]] = {}
    others: list[Criterion] = []
    for c in q.criteria:
        param = c.param
        if param is not None and param.type == "date" and not c.chain and not c.modifier:
            dates.setdefault(param.name, []).append(c)
        else:
            others.append(c)
    # Date ranges first: a bounded range is usually the most selective criterion of a
    # worklist-style search, and it keeps the planner from driving off a broad token list.
    parts = [_merged_dates(pids, q.resource_type, group) for group in dates.values()]
    parts += [_criterion_sql(pids, q.resource_type, c) for c in others]
    for sql, a in parts:
        where.append(sql)
        args += a
    return " AND ".join(where), args


def build_search(q: SearchQuery, pids: Pids) -> tuple[str, list[Any]]:
    where, args = build_where(q, pids)
    order, order_args = _order_sql(pids, q)
    cols = "r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.content, r.rid"
    sql = f"SELECT {cols} FROM resource r WHERE {where}{order} LIMIT ? OFFSET ?"
    return sql, [*args, *order_args, q.count, q.offset]


def build_count(q: SearchQuery, pids: Pids) -> tuple[str, list[Any]]:
    where, args = build_where(q, pids)
    return f"SELECT COUNT(*) FROM resource r WHERE {where}", args
