"""Reading one order back out of the store: the Imaging Service Request and everything hung on it.

Every lifecycle call ends by returning the persisted order graph as an OrderBundle (a
``collection``), and the update/cancel rules need the same graph to decide what may change; both
use ``load_order``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.conformance.defs_bundles import PROFILE_ORDER_BUNDLE
from fhirmwl.errors import NotFound
from fhirmwl.fhir import model
from fhirmwl.fhir.references import split_reference
from fhirmwl.services.orders.status import ref_id
from fhirmwl.services.resources import lock_identifier
from fhirmwl.store import Stored, Tx


@dataclass
class OrderGraph:
    isr: Stored
    rps: list[Stored] = field(default_factory=list)
    tasks: list[Stored] = field(default_factory=list)
    studies: list[Stored] = field(default_factory=list)
    others: list[Stored] = field(default_factory=list)  # Patient, Encounter, Device, …

    @property
    def isr_id(self) -> str:
        return self.isr.res_id

    def tasks_of(self, rp_id: str) -> list[dict[str, Any]]:
        out = []
        for t in self.tasks:
            res = t.resource()
            if any(ref_id(b, "ServiceRequest") == rp_id for b in res.get("basedOn") or []):
                out.append(res)
        return out

    def all(self) -> list[Stored]:
        return [self.isr, *self.rps, *self.tasks, *self.studies, *self.others]


def _refs(resource: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    candidates = [
        resource.get("subject"),
        resource.get("for"),
        resource.get("encounter"),
        resource.get("requester"),
    ]
    candidates += [p.get("reference") for p in resource.get("requestedPerformer") or []]
    for ref in candidates:
        target = split_reference((ref or {}).get("reference"))
        if target:
            out.append(target)
    return out


def referencing(tx: Tx, ids: list[str], source_type: str) -> list[tuple[str, str]]:
    """Resources of ``source_type`` based on any of the ServiceRequests ``ids``."""
    return list(dict.fromkeys(tx.references_to("ServiceRequest", ids, source_type, "based-on")))


def load_order(tx: Tx, isr_id: str) -> OrderGraph:
    """The order graph of ``ServiceRequest/isr_id``; NotFound when it is not an order."""
    isr = tx.read("ServiceRequest", isr_id)
    if isr is None or isr.deleted:
        raise NotFound(f"ServiceRequest/{isr_id} is not known")
    graph = OrderGraph(isr)
    rp_keys = tx.references_to("ServiceRequest", [isr_id], "ServiceRequest", "based-on")
    graph.rps = sorted(tx.read_many(rp_keys), key=lambda s: s.res_id)
    rp_ids = [s.res_id for s in graph.rps]
    if rp_ids:
        graph.tasks = sorted(
            tx.read_many(referencing(tx, rp_ids, "Task")),
            key=lambda s: s.res_id,
        )
    graph.studies = tx.read_many(referencing(tx, [isr_id, *rp_ids], "ImagingStudy"))
    seen = {(s.res_type, s.res_id) for s in graph.all()}
    wanted: list[tuple[str, str]] = []
    for s in graph.all():
        for key in _refs(s.resource()):
            if key not in seen:
                seen.add(key)
                wanted.append(key)
    graph.others = tx.read_many(wanted)
    return graph


def order_bundle(graph: OrderGraph, base: str) -> dict[str, Any]:
    """The OrderBundle (type ``collection``) of a persisted order."""
    entries = []
    for s in graph.all():
        entries.append({"fullUrl": f"{base}/{s.res_type}/{s.res_id}", "resource": s.resource()})
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PROFILE_ORDER_BUNDLE]},
        "type": "collection",
        "entry": entries,
    }


def find_by_placer(tx: Tx, isr: dict[str, Any]) -> str | None:
    """Id of the stored order with the same placer order number (idempotent create)."""
    ident = model.identifier_of_type(isr, model.PLAC)
    if not ident or not ident.get("value"):
        return None
    key = (model.PLAC[1], ident.get("system") or "", ident["value"])
    found = tx.find_unique(*key)
    if found is None and lock_identifier(tx, "ServiceRequest", key[1], key[2]):
        found = tx.find_unique(*key)  # a concurrent create of the same order committed first
    return found[1] if found and found[0] == "ServiceRequest" else None
