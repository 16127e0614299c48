"""Order control commands (HL7 v2 ORC-1: NW, CH, XO, SC, CA, DC, OC, HD, RL) on the one order
service, inside the caller's unit of work.

The v2 door maps a message to an ``OrderMessage`` (one command per ORC group with its keys,
MSH-7 and the mapped resources) and hands it here; the door itself writes nothing. Per group:
lock the order's clock row (``clock.lock``: MSH-7 ordering holds across connections and
processes), match the stored order (placer, filler, accession), refuse what would undo a later
decision (any change after a cancel, a message whose MSH-7 is older than the last one applied,
an order whose cancel arrived first), then either store the group's resources through the order
pipeline (NW, XO: completion, conditional updates keyed by business identifiers so a repeated NW
never duplicates, worklist check) or call the lifecycle for cancel, discontinue, hold, release
and step status changes. A cancel for an order the broker does not know is remembered; hold,
release and status changes for an unknown order are refused (AE 204). Any refusal raises, so
the caller's transaction rolls everything back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.dates import now_instant, utc_key
from fhirmwl.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    UNKNOWN_KEY_IDENTIFIER,
    ErrorLocation,
    V2Error,
)
from fhirmwl.mapping.v2_to_fhir import OrderAction, OrderGroup, OrderMessage
from fhirmwl.services.orders import clock as order_clock
from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.orders.graph import load_order
from fhirmwl.services.orders.lifecycle import (
    cancel_order,
    change_step_status,
    hold_order,
    release_order,
)
from fhirmwl.services.orders.matching import (
    entry_kind,
    generated_codes,
    group_entries,
    match_order,
)
from fhirmwl.services.orders.pipeline import (
    check_worklist,
    complete_graphs,
    isr_of_tasks,
    written_tasks,
)
from fhirmwl.services.orders.status import NOT_STARTED, TERMINAL
from fhirmwl.services.orders.steps import Finding
from fhirmwl.store import Tx

BUNDLE_ACTIONS = {OrderAction.CREATE, OrderAction.UPDATE}
CANCELLING = {OrderAction.CANCEL, OrderAction.DISCONTINUE}
_NEEDS_ORDER = {OrderAction.HOLD, OrderAction.RELEASE, OrderAction.STATUS}


@dataclass
class ControlResult:
    """Notes for the message log and findings for the answer (ERR severity W)."""

    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _where(group: OrderGroup, field: int = 1) -> ErrorLocation:
    return ErrorLocation("ORC", group.index, field)


def _label(group: OrderGroup) -> str:
    key = group.placer or group.filler or group.accession
    return f"order {key[1]} (ORC-1 {group.order_control})"


def group_key(group: OrderGroup) -> str:
    system, value = group.placer or group.filler or group.accession
    return order_clock.order_key(system or "", value)


def _stale(group: OrderGroup, msg_time: str, clock: order_clock.OrderClock) -> V2Error:
    return V2Error(
        APPLICATION_INTERNAL_ERROR,
        f"{_label(group)}: MSH-7 {msg_time} is older than the last change applied to the "
        f"order ({clock.msg_time}, MSH-10 {clock.control_id}); not applied",
        ErrorLocation("MSH", 1, 7),
    )


def check_state(
    tx: Tx, group: OrderGroup, isr_id: str, msg_time: str, clock: order_clock.OrderClock
) -> bool:
    """False when there is nothing to do (a repeated cancel); raises V2Error when stale."""
    order_clock.with_legacy(tx, clock, isr_id)
    status = tx.get("ServiceRequest", isr_id).get("status")
    if status in ("revoked", "entered-in-error"):
        if group.action in CANCELLING:
            return False
        raise V2Error(
            APPLICATION_INTERNAL_ERROR,
            f"{_label(group)}: the order was cancelled earlier; a later change is not applied",
            _where(group),
        )
    if clock.msg_time and msg_time < clock.msg_time and group.action not in CANCELLING:
        raise _stale(group, msg_time, clock)
    return True


def _unknown_order(
    group: OrderGroup, msg_time: str, clock: order_clock.OrderClock, result: ControlResult
) -> bool:
    """An order not stored yet: True when its group is to be created from the Bundle."""
    if group.action in CANCELLING:
        result.notes.append(f"{_label(group)}: order not known; the cancel is remembered")
        return False
    if group.action in _NEEDS_ORDER:
        raise V2Error(UNKNOWN_KEY_IDENTIFIER, f"{_label(group)}: order not known", _where(group, 2))
    if clock.cancelled and msg_time <= clock.msg_time:
        raise V2Error(
            APPLICATION_INTERNAL_ERROR,
            f"{_label(group)}: a newer message (MSH-10 {clock.control_id}, MSH-7 "
            f"{clock.msg_time}) cancelled this order before it arrived; not applied",
            ErrorLocation("MSH", 1, 7),
        )
    return True


def apply_order_control(tx: Tx, om: OrderMessage, ctx: OrderContext) -> ControlResult:
    """Apply every group of ``om``; returns notes for the message log and findings."""
    msg_time = utc_key(om.message_datetime) if om.message_datetime else utc_key(now_instant())
    bundle = om.bundle
    result = ControlResult()
    clocks = {k: order_clock.lock(tx, k) for k in sorted({group_key(g) for g in om.groups})}
    dropped: list[dict[str, Any]] = []
    via_bundle: list[OrderGroup] = []
    via_lifecycle: list[tuple[OrderGroup, str]] = []
    fresh: set[str] = set()  # ISR fullUrls of new orders
    known: dict[int, str | None] = {}  # group index → stored ISR id
    for group in om.groups:
        clock = clocks[group_key(group)]
        entries = group_entries(bundle, group.isr_full_url)
        isr_id = known[group.index] = match_order(tx, group)
        if isr_id is None:
            if _unknown_order(group, msg_time, clock, result):
                via_bundle.append(group)
                fresh.add(group.isr_full_url)
            else:
                dropped += entries
            continue
        if not check_state(tx, group, isr_id, msg_time, clock):
            result.notes.append(f"{_label(group)}: order already cancelled")
            dropped += entries
        elif group.action in BUNDLE_ACTIONS:
            retarget(tx, group, isr_id, entries, ctx)
            via_bundle.append(group)
        else:
            dropped += entries
            via_lifecycle.append((group, isr_id))
    kept = [e for e in bundle.get("entry") or [] if not any(e is d for d in dropped)]
    if via_bundle or any(entry_kind(e) == "Patient" for e in kept):
        graph = dict(bundle, entry=kept)
        result.findings += complete_graphs(tx, graph, ctx, new_orders=fresh)
        response = ctx.bundles.transaction(tx, graph, ctx.base, "minimal")
        tasks = written_tasks(response)
        result.findings += check_worklist(tx, tasks, ctx, isr_of_tasks(graph, response))
        created = _locations(graph, response)
        for group in via_bundle:
            known[group.index] = known[group.index] or created.get(group.isr_full_url)
    for group, isr_id in via_lifecycle:
        run_lifecycle(tx, group, isr_id, ctx)
    for group in om.groups:
        cancelled = group.action in CANCELLING
        clock = clocks[group_key(group)]
        order_clock.advance(tx, clock, msg_time, om.control_id, known[group.index], cancelled)
    return result


def _locations(graph: dict[str, Any], response: dict[str, Any]) -> dict[str, str]:
    """fullUrl → id of every entry the transaction wrote."""
    out = {}
    for entry, answer in zip(graph.get("entry") or [], response.get("entry") or [], strict=False):
        location = str((answer.get("response") or {}).get("location") or "")
        if location and entry.get("fullUrl"):
            out[str(entry["fullUrl"])] = location.split("/")[1]
    return out


def _group_tasks(tx: Tx, group: OrderGroup, isr_id: str) -> list[str]:
    tasks = load_order(tx, isr_id).tasks
    wanted = set(group.sps_ids)
    named = [
        t
        for t in tasks
        if (model.identifier_of_type(t.resource(), model.SPSID) or {}).get("value") in wanted
    ]
    chosen = named or tasks
    return [t.res_id for t in chosen if t.resource().get("status") not in TERMINAL]


def run_lifecycle(tx: Tx, group: OrderGroup, isr_id: str, ctx: OrderContext) -> None:
    """Cancel, discontinue, hold, release or change step status through the lifecycle."""
    reason = {"text": f"HL7 v2 ORC-1 {group.order_control}"}
    action = group.action
    if action in CANCELLING:
        cancel_order(tx, isr_id, reason, action is OrderAction.DISCONTINUE, ctx)
    elif action is OrderAction.HOLD:
        hold_order(tx, isr_id, ctx)
    elif action is OrderAction.RELEASE:
        release_order(tx, isr_id, ctx)
    elif action in (OrderAction.START, OrderAction.COMPLETE) and group.task_status:
        for task_id in _group_tasks(tx, group, isr_id):
            current = tx.get("Task", task_id).get("status")
            if group.task_status == "completed" and current in NOT_STARTED:
                change_step_status(tx, task_id, "in-progress", ctx)
            change_step_status(tx, task_id, group.task_status, ctx)


def _merge_isr_identifiers(
    new: dict[str, Any], stored: dict[str, Any], keep_acsn: bool
) -> list[Any]:
    idents = list(new.get("identifier") or [])
    if keep_acsn:
        idents = [i for i in idents if not model.has_type(i, model.ACSN)]
    for old in stored.get("identifier") or []:
        codes = (model.ACSN, model.PLAC, model.FILL)
        kind = next((c for c in codes if model.has_type(old, c)), None)
        if kind is not None and not any(model.has_type(i, kind) for i in idents):
            idents.append(old)
    return idents


def _existing(tx: Tx, entry: dict[str, Any], ctx: OrderContext) -> str | None:
    url = str(entry["request"]["url"])
    rtype, _, query = url.partition("?")
    if not query:
        return None
    ids = ctx.resources.find(tx, rtype, query)
    return ids[0] if len(ids) == 1 else None


def retarget(
    tx: Tx, group: OrderGroup, isr_id: str, entries: list[dict[str, Any]], ctx: OrderContext
) -> None:
    """Point a repeated NW / an XO at the stored resources, keeping their status and the
    values the broker generated earlier (accession, RP ID, SPS ID, Study UID)."""
    graph = load_order(tx, isr_id)
    spare = {
        "ServiceRequest": [s.res_id for s in graph.rps],
        "Task": [s.res_id for s in graph.tasks],
        "ImagingStudy": [s.res_id for s in graph.studies],
    }
    pending: list[dict[str, Any]] = []
    for entry in entries:
        res = entry["resource"]
        if entry["fullUrl"] == group.isr_full_url:
            stored = graph.isr.resource()
            res["identifier"] = _merge_isr_identifiers(res, stored, group.accession_generated)
            res["status"] = stored.get("status", res.get("status"))
            entry["request"] = {"method": "PUT", "url": f"ServiceRequest/{isr_id}"}
            continue
        rtype = entry_kind(entry)
        if rtype not in spare:
            continue
        target = _existing(tx, entry, ctx)
        if target is None:
            pending.append(entry)
        else:
            if target in spare[rtype]:
                spare[rtype].remove(target)
            _keep_stored(tx, entry, rtype, target, False)
    for entry in pending:
        rtype = entry_kind(entry)
        if generated_codes(entry["resource"]) and spare[rtype]:
            _keep_stored(tx, entry, rtype, spare[rtype].pop(0), True)


def _keep_stored(tx: Tx, entry: dict[str, Any], rtype: str, target: str, ids: bool) -> None:
    stored = tx.get(rtype, target)
    res = entry["resource"]
    if "status" in stored:
        res["status"] = stored["status"]
    if ids:
        res["identifier"] = stored.get("identifier") or res.get("identifier")
    entry["request"] = {"method": "PUT", "url": f"{rtype}/{target}"}
