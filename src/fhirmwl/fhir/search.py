"""Parse FHIR search query parameters into a plain ``SearchQuery``.

Parsing is separate from SQL so that the rules (which parameters exist, strict vs lenient
handling, OR lists, chains, result parameters) are tested without a database, and so that other
callers (the worklist query, operations) can build queries programmatically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhirmwl.errors import BadRequest
from fhirmwl.fhir.search_params import (
    COMMON_PARAMS,
    RESULT_PARAMS,
    SEARCH_PARAMS,
    SearchParam,
    param_for,
)

DEFAULT_COUNT = 50
MAX_COUNT = 1000
# Limits on what a client may ask (docs/api.md "Limits"): beyond them the answer is 400, never a
# database error. 100 OR-ed values and 2,048 characters per value are far above any real query.
MAX_VALUE_LENGTH = 2048
MAX_OR_VALUES = 100
MAX_PARAMETERS = 50


@dataclass(frozen=True)
class Criterion:
    name: str
    param: SearchParam | None  # None for _id / _lastUpdated
    modifier: str | None
    values: tuple[str, ...]  # OR-ed
    # Reference hops for chained search, outermost first: (source type, reference param,
    # target type). ``param``/``modifier`` then apply to the last target type.
    chain: tuple[tuple[str, SearchParam, str], ...] = ()


@dataclass(frozen=True)
class Include:
    source_type: str  # or "*"
    param: str  # or "*"
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchQuery:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (name, descending)
    includes: list[Include] = field(default_factory=list)
    total: str | None = None
    summary: str | None = None
    elements: list[str] | None = None
    ignored: list[str] = field(default_factory=list)


def split_or(value: str) -> tuple[str, ...]:
    """Split on unescaped commas, then unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    if "\\" not in value:  # nothing escaped (nearly always): the plain split is the same
        return tuple(value.split(","))
    parts = re.split(r"(?<!\\),", value)
    return tuple(re.sub(r"\\([,|$\\])", r"\1", p) for p in parts)


def check_limits(key: str, value: str) -> None:
    """Refuse over-long values and OR lists (400, naming the parameter and the limit)."""
    if len(key) > 256:
        raise BadRequest("a search parameter name has at most 256 characters")
    if len(value) > MAX_VALUE_LENGTH * MAX_OR_VALUES:
        raise BadRequest(f"parameter {key!r}: value too long", expression=key)
    values = split_or(value)
    if len(values) > MAX_OR_VALUES:
        raise BadRequest(
            f"parameter {key!r}: {len(values)} OR-ed values, at most {MAX_OR_VALUES} are accepted",
            expression=key,
        )
    longest = max(len(v) for v in values)
    if longest > MAX_VALUE_LENGTH:
        raise BadRequest(
            f"parameter {key!r}: a value of {longest} characters, at most {MAX_VALUE_LENGTH} are "
            "accepted",
            expression=key,
        )


def _int(name: str, value: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {value!r}", expression=name) from None
    if number < lo:
        raise BadRequest(f"{name} must be >= {lo}", expression=name)
    return min(number, hi)


def _include(value: str, iterate: bool, reverse: bool, strict: bool) -> Include | None:
    if value == "*":
        return Include("*", "*", None, iterate, reverse)
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0] not in SEARCH_PARAMS:
        raise BadRequest(f"invalid _include/_revinclude value {value!r}")
    param = param_for(parts[0], parts[1])
    if parts[1] != "*" and (param is None or param.type != "reference"):
        if strict:
            raise BadRequest(f"{parts[0]} has no reference search parameter {parts[1]!r}")
        return None
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None, iterate, reverse)


def _target_for(param: SearchParam, modifier: str | None, next_name: str) -> str:
    if param.type != "reference":
        raise BadRequest(f"cannot chain through non-reference parameter {param.name!r}")
    candidates = [modifier] if modifier else list(param.targets)
    for ttype in candidates:
        if param_for(ttype, next_name) is not None or next_name in COMMON_PARAMS:
            return ttype
    raise BadRequest(
        f"unknown chained parameter {next_name!r} on {'/'.join(candidates)} (via {param.name})"
    )


def _chain(resource_type: str, key: str, values: tuple[str, ...], strict: bool) -> Criterion:
    """``a:T.b.c=v``: hops through reference params ``a`` and ``b``, then matches ``c``."""
    segments = key.split(".")
    hops: list[tuple[str, SearchParam, str]] = []
    current = resource_type
    for i, segment in enumerate(segments[:-1]):
        name, _, modifier = segment.partition(":")
        param = param_for(current, name)
        if param is None:
            raise BadRequest(f"unknown search parameter {name!r} for {current}", expression=key)
        next_name = segments[i + 1].partition(":")[0]
        target = _target_for(param, modifier or None, next_name)
        hops.append((current, param, target))
        current = target
    name, _, modifier = segments[-1].partition(":")
    final = param_for(current, name)
    if final is None:  # _id on the target
        return Criterion(name, None, modifier or None, values, tuple(hops))
    return Criterion(name, final, modifier or None, values, tuple(hops))


def _result_param(q: SearchQuery, key: str, value: str, strict: bool) -> None:
    base, _, modifier = key.partition(":")
    if base == "_count":
        q.count = _int("_count", value, 0, MAX_COUNT)
    elif base == "_offset":
        q.offset = _int("_offset", value, 0, 10**9)
    elif base == "_sort":
        for item in value.split(","):
            desc = item.startswith("-")
            q.sort.append((item.lstrip("-"), desc))
    elif base in ("_include", "_revinclude"):
        inc = _include(value, modifier == "iterate", base == "_revinclude", strict)
        if inc:
            q.includes.append(inc)
    elif base == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise BadRequest(f"_total must be none|estimate|accurate, got {value!r}")
        q.total = value
    elif base == "_summary":
        if value not in ("true", "false", "count", "data", "text"):
            raise BadRequest(f"invalid _summary value {value!r}")
        q.summary = value
    elif base == "_elements":
        q.elements = [e.strip() for e in value.split(",") if e.strip()]


def parse_search(
    resource_type: str, params: list[tuple[str, str]], strict: bool = False
) -> SearchQuery:
    """Build a query; unknown parameters raise under ``strict`` and are reported otherwise."""
    q = SearchQuery(resource_type)
    if len(params) > MAX_PARAMETERS:
        raise BadRequest(f"at most {MAX_PARAMETERS} search parameters are accepted per request")
    for key, value in params:
        check_limits(key, value)
        base, _, modifier = key.partition(":")
        if base in RESULT_PARAMS:
            _result_param(q, key, value, strict)
            continue
        values = split_or(value)
        if base in COMMON_PARAMS and "." not in key:
            q.criteria.append(Criterion(base, None, modifier or None, values))
            continue
        name, _, modifier = key.partition(".")[0].partition(":")
        param = param_for(resource_type, name)
        if param is None:
            if strict:
                raise BadRequest(
                    f"unknown search parameter {name!r} for {resource_type}", expression=key
                )
            q.ignored.append(key)
            continue
        if "." in key:
            q.criteria.append(_chain(resource_type, key, values, strict))
        else:
            q.criteria.append(Criterion(name, param, modifier or None, values))
    for name, _desc in q.sort:
        if name not in COMMON_PARAMS and param_for(resource_type, name) is None:
            raise BadRequest(f"cannot sort {resource_type} by unknown parameter {name!r}")
    return q
