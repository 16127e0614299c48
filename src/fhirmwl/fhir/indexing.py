"""Pure row builder: one resource in, the search-index rows out.

The store calls this inside the write transaction, so index rows are always exactly those of the
current version. Keeping it pure (no IO) means it is tested on plain dicts and that `reindex` is
just "read every resource, call this".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.dates import date_range, period_range
from fhirmwl.fhir.references import split_reference
from fhirmwl.fhir.search_params import SEARCH_PARAMS, SearchParam


@dataclass
class IndexRows:
    tokens: list[tuple[str, str | None, str | None, str | None, str | None]] = field(
        default_factory=list
    )  # (param, system, code, type_system, type_code)
    strings: list[tuple[str, str, str]] = field(default_factory=list)  # (param, norm, raw)
    dates: list[tuple[str, str, str]] = field(default_factory=list)  # (param, lo, hi)
    refs: list[tuple[str, str, str]] = field(default_factory=list)  # (param, type, id)
    uniques: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, system, value)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used by FHIR string search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def walk(node: Any, path: str) -> Iterator[Any]:
    """Yield every value at a dotted path, flattening lists at each step."""
    if not path:
        if isinstance(node, list):
            yield from node
        elif node is not None:
            yield node
        return
    head, _, rest = path.partition(".")
    items = node if isinstance(node, list) else [node]
    for item in items:
        if isinstance(item, dict) and head in item:
            yield from walk(item[head], rest)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName, Address
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city"):
            part = value.get(key)
            if isinstance(part, str):
                yield part
            elif isinstance(part, list):
                yield from (p for p in part if isinstance(p, str))


def _dates(value: Any) -> Iterator[tuple[str, str]]:
    try:
        if isinstance(value, str):
            yield date_range(value)
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            yield period_range(value)
    except ValueError:
        return  # structure validation reports malformed dates; the index just skips them


# One search parameter as ``index_rows`` applies it: (name, type, [(keys, only)]) with each
# FHIRPath split once into its keys and its ``[Type]`` restriction (not again per write).
# Cached per resource type and rebuilt when its parameter table is replaced.
_Plan = list[tuple[str, str, list[tuple[tuple[str, ...], str]]]]
_PLANS: dict[str, tuple[dict[str, SearchParam], _Plan]] = {}


def _plan(resource_type: str, params: dict[str, SearchParam]) -> _Plan:
    cached = _PLANS.get(resource_type)
    if cached is not None and cached[0] is params:
        return cached[1]
    plan: _Plan = []
    for param in params.values():
        paths = []
        for raw_path in param.paths:
            path, _, only = raw_path.partition("[")
            paths.append((tuple(path.split(".")) if path else (), only.rstrip("]")))
        plan.append((param.name, param.type, paths))
    _PLANS[resource_type] = (params, plan)
    return plan


def _values(resource: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    """Every value at a path (keys), flattening lists at each step: what ``walk`` yields, in
    the same order, as a list (no generator per step: this runs for every parameter of every
    write)."""
    if not keys:
        return [resource]
    if keys[0] not in resource:
        return []
    items: list[Any] = [resource]
    last = len(keys) - 1
    for depth, key in enumerate(keys):
        nxt: list[Any] = []
        for item in items:
            if isinstance(item, dict) and key in item:
                found = item[key]
                if isinstance(found, list):
                    nxt.extend(found)
                elif found is not None or depth < last:
                    nxt.append(found)
        items = nxt
        if not items:
            break
    return items


def _add_tokens(out: list[Any], name: str, value: Any) -> None:
    """Token rows of one value: a code, boolean, Coding, CodeableConcept or Identifier (with
    its type's codings)."""
    if isinstance(value, bool):
        out.append((name, None, "true" if value else "false", None, None))
    elif isinstance(value, str):
        out.append((name, None, value, None, None))
    elif isinstance(value, dict):
        if "coding" in value or "text" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                out.append((name, coding.get("system"), coding.get("code"), None, None))
        elif "value" in value and ("system" in value or "type" in value or "use" in value):
            for tcoding in (value.get("type") or {}).get("coding") or [{}]:
                out.append(
                    (
                        name,
                        value.get("system"),
                        value["value"],
                        tcoding.get("system"),
                        tcoding.get("code"),
                    )
                )
        elif "code" in value:  # Coding
            out.append((name, value.get("system"), value.get("code"), None, None))
        elif "value" in value:
            out.append((name, value.get("system"), value["value"], None, None))


def _add_planned(rows: IndexRows, plan: _Plan, resource: dict[str, Any]) -> None:
    """The rows of every parameter of a plan, in parameter, path and value order."""
    for name, ptype, paths in plan:
        for keys, only in paths:
            if keys and keys[0] not in resource:
                continue
            values = _values(resource, keys)
            if not values:
                continue
            if ptype == "token":
                for value in values:
                    _add_tokens(rows.tokens, name, value)
            elif ptype == "reference":
                for value in values:
                    ref = value.get("reference") if isinstance(value, dict) else None
                    target = split_reference(ref) if isinstance(ref, str) else None
                    if target and (not only or target[0] == only):
                        rows.refs.append((name, target[0], target[1]))
            elif ptype == "string":
                for value in values:
                    rows.strings.extend((name, normalize(s), s) for s in _strings(value))
            elif ptype == "date":
                for value in values:
                    rows.dates.extend((name, lo, hi) for lo, hi in _dates(value))
            elif ptype == "uri":
                for value in values:
                    if isinstance(value, str):
                        rows.tokens.append((name, None, value, None, None))


def _uniques(resource_type: str, resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Business identifiers that must be unique across the whole store (see design.md)."""
    out: list[tuple[str, str, str]] = []
    idents = resource.get("identifier") or []
    if resource_type == "ServiceRequest" and model.identifier_of_type(resource, model.ACSN):
        for code in (model.ACSN, model.PLAC, model.FILL):
            for ident in idents:
                if model.has_type(ident, code) and ident.get("value"):
                    out.append((code[1], ident.get("system") or "", ident["value"]))
    elif resource_type == "Task":
        for ident in idents:
            if model.has_type(ident, model.SPSID) and ident.get("value"):
                out.append(("SPSID", ident.get("system") or "", ident["value"]))
    elif resource_type == "ImagingStudy":
        for ident in idents:
            if ident.get("system") == model.DICOM_UID_SYSTEM and ident.get("value"):
                out.append(("STUDYUID", "", ident["value"]))
    return list(dict.fromkeys(out))


def index_rows(resource_type: str, resource: dict[str, Any]) -> IndexRows:
    rows = IndexRows()
    params = SEARCH_PARAMS.get(resource_type)
    if params:
        _add_planned(rows, _plan(resource_type, params), resource)
    rows.tokens = list(dict.fromkeys(rows.tokens))
    rows.strings = list(dict.fromkeys(rows.strings))
    rows.refs = list(dict.fromkeys(rows.refs))
    rows.uniques = _uniques(resource_type, resource)
    return rows
