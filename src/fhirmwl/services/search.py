"""Search and history answers as FHIR Bundles: paging, _include/_revinclude, _summary, _elements.

Separate from the SQL translation (store/search_sql.py): this module decides what goes into the
Bundle, the store decides how rows are found.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson

from fhirmwl.fhir.search import Include, SearchQuery, parse_search
from fhirmwl.store import Stored, Tx

_MAX_ITERATE = 4
_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}


@lru_cache(maxsize=256)
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements marked ``isSummary`` in R5 (from the ``fhir.resources`` models)."""
    from fhir.resources import get_fhir_model_class

    model = get_fhir_model_class(resource_type)
    names = model.summary_elements_sequence()
    fields = model.model_fields
    return frozenset((fields[n].alias or n) if n in fields else n for n in names)


def shape(resource: dict[str, Any], summary: str | None, elements: list[str] | None = None) -> Any:
    """Apply ``_summary`` / ``_elements``; a subsetted resource is tagged SUBSETTED."""
    if elements:
        keep = {"resourceType", "id", "meta", *elements}
        resource = {k: v for k, v in resource.items() if k in keep}
    elif summary == "data":
        resource = {k: v for k, v in resource.items() if k != "text"}
    elif summary == "true":
        summary_keep = summary_elements(str(resource.get("resourceType")))
        resource = {k: v for k, v in resource.items() if k in summary_keep or k == "resourceType"}
    elif summary == "text":
        keep = {"resourceType", "id", "meta", "text"}
        resource = {k: v for k, v in resource.items() if k in keep}
    else:
        return resource
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    resource["meta"] = meta
    return resource


def _shape(resource: dict[str, Any], q: SearchQuery) -> dict[str, Any]:
    return dict(shape(resource, q.summary, q.elements))


def _include_targets(
    tx: Tx,
    inc: Include,
    pool: dict[tuple[str, str], dict[str, Any]],
    sources: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    by_type: dict[str, list[str]] = {}
    for t, i in sources:
        by_type.setdefault(t, []).append(i)
    for t, ids in by_type.items():
        if inc.reverse:
            source_type = None if inc.source_type == "*" else inc.source_type
            keys += tx.references_to(t, ids, source_type, inc.param)
        elif inc.source_type in ("*", t):
            keys += tx.references_from(t, ids, inc.param, inc.target_type)
    return [k for k in dict.fromkeys(keys) if k not in pool]


def resolve_includes(tx: Tx, q: SearchQuery, matches: list[tuple[str, str]]) -> list[Stored]:
    """Follow _include/_revinclude from the matches; ``:iterate`` ones also from what was added."""
    pool: dict[tuple[str, str], dict[str, Any]] = {k: {} for k in matches}
    added: list[Stored] = []
    frontier = list(matches)
    for depth in range(_MAX_ITERATE):
        new: list[Stored] = []
        for inc in q.includes:
            if depth > 0 and not inc.iterate:
                continue
            for stored in tx.read_many(_include_targets(tx, inc, pool, frontier)):
                key = (stored.res_type, stored.res_id)
                if key not in pool:
                    pool[key] = {}
                    new.append(stored)
        if not new:
            break
        added += new
        frontier = [(s.res_type, s.res_id) for s in new]
    return added


def page_link(
    base: str, resource_type: str, params: list[tuple[str, str]], offset: int, count: int
) -> str:
    kept = [(k, v) for k, v in params if k not in ("_offset", "_count")]
    return f"{base}/{resource_type}?" + urlencode(
        [*kept, ("_count", str(count)), ("_offset", str(offset))]
    )


def search_bundle(
    tx: Tx,
    resource_type: str,
    params: list[tuple[str, str]],
    base: str,
    strict: bool,
) -> dict[str, Any]:
    q = parse_search(resource_type, params, strict)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if q.summary == "count" or q.count == 0:  # _count=0 asks for the total only
        bundle["total"] = tx.count(q)
        return bundle
    want = q.count
    q.count = want + 1  # one extra row tells whether there is a next page
    rows = tx.search(q) if want > 0 else []
    q.count = want
    has_next = len(rows) > want
    rows = rows[:want]
    if q.total == "accurate" or (q.total != "none" and not has_next and q.offset == 0):
        bundle["total"] = tx.count(q) if q.total == "accurate" or has_next else len(rows)
    kept = [(k, v) for k, v in params if k.split(".")[0].split(":")[0] not in q.ignored]
    links = [{"relation": "self", "url": page_link(base, resource_type, kept, q.offset, want)}]
    if has_next:
        links.append(
            {"relation": "next", "url": page_link(base, resource_type, kept, q.offset + want, want)}
        )
    if q.offset > 0:
        links.append(
            {
                "relation": "previous",
                "url": page_link(base, resource_type, kept, max(q.offset - want, 0), want),
            }
        )
    bundle["link"] = links
    entries = [
        {
            "fullUrl": f"{base}/{resource_type}/{res_id}",
            "resource": _shape(orjson.loads(content), q),
            "search": {"mode": "match"},
        }
        for res_id, content in rows
    ]
    if q.includes and rows:
        for stored in resolve_includes(tx, q, [(resource_type, r[0]) for r in rows]):
            entries.append(
                {
                    "fullUrl": f"{base}/{stored.res_type}/{stored.res_id}",
                    "resource": _shape(stored.resource(), q),
                    "search": {"mode": "include"},
                }
            )
    bundle["entry"] = entries
    return bundle


def history_bundle(items: list[Stored], base: str, total: int | None = None) -> dict[str, Any]:
    entries = []
    for s in items:
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{s.res_type}/{s.res_id}",
            "request": {
                "method": s.method or "PUT",
                "url": f"{s.res_type}/{s.res_id}" if s.method != "POST" else s.res_type,
            },
            "response": {
                "status": "201 Created" if s.version == 1 else ("204" if s.deleted else "200 OK"),
                "etag": s.etag,
                "lastModified": s.last_updated,
            },
        }
        if not s.deleted:
            entry["resource"] = s.resource()
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "entry": entries}
    if total is not None:
        bundle["total"] = total
    return bundle
