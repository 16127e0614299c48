"""Look-ups for the desk's forms. Find an order by a number someone reads out: accession,
placer or filler order number, Requested Procedure ID (ServiceRequest identifiers) or SPS ID
(Task identifier); and the known station AE titles (Device registered names) to suggest.

A cancelled or finished order is no longer on the worklist, so the desk needs a way to reach its
order page other than a worklist row. The lookup is an ordinary FHIR token search through the
store's search index; every hit is resolved to its Imaging Service Request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fhirmwl.fhir.references import reference_id
from fhirmwl.fhir.search import parse_search
from fhirmwl.store import Tx
from fhirmwl.web.order_view import order_of_task

MAX_HITS = 20
MAX_STATIONS = 500


@dataclass(frozen=True)
class Found:
    isr_id: str
    status: str
    code: str
    authored: str


def _isr_of(tx: Tx, sr_id: str) -> str:
    stored = tx.read("ServiceRequest", sr_id)
    if stored is None or stored.content is None:
        return sr_id
    parent = next(
        (reference_id(b, "ServiceRequest") for b in stored.resource().get("basedOn") or []), None
    )
    return parent or sr_id


def find_orders(tx: Tx, number: str) -> list[Found]:
    """Orders with ``number`` as an identifier value of their requests or steps."""
    value = number.strip().replace(",", "\\,").replace("|", "\\|")
    if not value:
        return []
    isr_ids: dict[str, None] = {}
    q = parse_search("ServiceRequest", [("identifier", value), ("_count", str(MAX_HITS))])
    for sr_id, _content in tx.search(q):
        isr_ids[_isr_of(tx, sr_id)] = None
    q = parse_search("Task", [("identifier", value), ("_count", str(MAX_HITS))])
    for task_id, _content in tx.search(q):
        task = tx.read("Task", task_id)
        isr = order_of_task(tx, task.resource()) if task and task.content else None
        if isr:
            isr_ids[isr] = None
    out = []
    for stored in tx.read_many([("ServiceRequest", i) for i in isr_ids]):
        res = stored.resource()
        code: dict[str, Any] = (res.get("code") or {}).get("concept") or res.get("code") or {}
        codings: list[dict[str, Any]] = code.get("coding") or [{}]
        text = str(code.get("text") or codings[0].get("display") or "")
        out.append(
            Found(
                stored.res_id, str(res.get("status") or ""), text, str(res.get("authoredOn") or "")
            )
        )
    return out


def known_stations(tx: Tx) -> list[str]:
    """AE titles of the stations the store knows (Device ``registered-name``), sorted."""
    q = parse_search("Device", [("_count", str(MAX_STATIONS))])
    names: set[str] = set()
    for _id, content in tx.search(q):
        for name in orjson.loads(content).get("name") or []:
            kind = name.get("type")
            codes = (
                [kind]
                if isinstance(kind, str)
                else [c.get("code") for c in (kind or {}).get("coding") or []]
            )
            if "registered-name" in codes and name.get("value"):
                names.add(str(name["value"]))
    return sorted(names)
