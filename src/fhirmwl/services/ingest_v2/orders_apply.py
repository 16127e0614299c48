"""Apply one mapped order message (ORM^O01, OMG^O19, OMI^O23) inside an open unit of work.

Per order group: match the stored order (placer, filler, accession), refuse what would undo a
later decision (any change after a cancel, or a message whose MSH-7 is older than the last one
applied to the order), then either apply the group's resources through the mapped transaction
Bundle (NW, XO: conditional updates keyed by business identifiers, so a repeated NW never
duplicates) or call the one order lifecycle (``services.orders``) for cancel, discontinue,
hold, release and step status changes. A group the broker does not know and that only asks to
cancel is acknowledged with nothing to do; hold, release and status changes for an unknown order
are refused (AE 204). Any refusal raises, so the caller's transaction rolls everything back.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.dates import utc_key
from fhirmwl.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    UNKNOWN_KEY_IDENTIFIER,
    ErrorLocation,
    V2Error,
)
from fhirmwl.mapping.v2_to_fhir import OrderAction, OrderGroup, OrderMessage
from fhirmwl.services import orders
from fhirmwl.services.ingest_v2 import log
from fhirmwl.services.ingest_v2.conform import conform
from fhirmwl.services.ingest_v2.env import IngestEnv
from fhirmwl.services.ingest_v2.matching import (
    entry_kind,
    generated_codes,
    group_entries,
    match_order,
)
from fhirmwl.services.orders.graph import load_order
from fhirmwl.services.orders.status import NOT_STARTED, TERMINAL
from fhirmwl.store import Tx

BUNDLE_ACTIONS = {OrderAction.CREATE, OrderAction.UPDATE}
CANCELLING = {OrderAction.CANCEL, OrderAction.DISCONTINUE}
_NEEDS_ORDER = {OrderAction.HOLD, OrderAction.RELEASE, OrderAction.STATUS}


def _where(group: OrderGroup, field: int = 1) -> ErrorLocation:
    return ErrorLocation("ORC", group.index, field)


def _label(group: OrderGroup) -> str:
    key = group.placer or group.filler or group.accession
    return f"order {key[1]} (ORC-1 {group.order_control})"


def check_state(tx: Tx, group: OrderGroup, isr_id: str, msg_time: str | None) -> bool:
    """False when there is nothing to do (a repeated cancel); raises V2Error when stale."""
    status = tx.get("ServiceRequest", isr_id).get("status")
    if status in ("revoked", "entered-in-error"):
        if group.action in CANCELLING:
            return False
        raise V2Error(
            APPLICATION_INTERNAL_ERROR,
            f"{_label(group)}: the order was cancelled earlier; a later change is not applied",
            _where(group),
        )
    clock = log.order_clock(tx.conn, isr_id)
    if msg_time and clock and msg_time < clock and group.action not in CANCELLING:
        raise V2Error(
            APPLICATION_INTERNAL_ERROR,
            f"{_label(group)}: MSH-7 {msg_time} is older than the last change applied to the "
            f"order ({clock}); not applied",
            ErrorLocation("MSH", 1, 7),
        )
    return True


def apply_order_message(tx: Tx, om: OrderMessage, env: IngestEnv) -> list[str]:
    """Apply every group; returns notes for the message log."""
    msg_time = utc_key(om.message_datetime) if om.message_datetime else None
    bundle = conform(
        om.bundle, env.orders.clock(), env.orders.settings.slot_minutes, env.default_modality
    )
    notes: list[str] = []
    dropped: list[dict[str, Any]] = []
    via_bundle: list[OrderGroup] = []
    via_lifecycle: list[tuple[OrderGroup, str]] = []
    for group in om.groups:
        entries = group_entries(bundle, group.isr_full_url)
        isr_id = match_order(tx, group)
        if isr_id is None:
            if group.action in CANCELLING:
                notes.append(f"{_label(group)}: order not known, nothing to cancel")
                dropped += entries
            elif group.action in _NEEDS_ORDER:
                raise V2Error(
                    UNKNOWN_KEY_IDENTIFIER, f"{_label(group)}: order not known", _where(group, 2)
                )
            else:
                via_bundle.append(group)
            continue
        if not check_state(tx, group, isr_id, msg_time):
            notes.append(f"{_label(group)}: order already cancelled")
            dropped += entries
        elif group.action in BUNDLE_ACTIONS:
            retarget(tx, group, isr_id, entries, env)
            via_bundle.append(group)
        else:
            dropped += entries
            via_lifecycle.append((group, isr_id))
    kept = [e for e in bundle.get("entry") or [] if not any(e is d for d in dropped)]
    if via_bundle or any(entry_kind(e) == "Patient" for e in kept):
        env.bundles.transaction(tx, dict(bundle, entry=kept), env.base, "minimal")
    for group, isr_id in via_lifecycle:
        run_lifecycle(tx, group, isr_id, env)
    for group in [*via_bundle, *(g for g, _ in via_lifecycle)]:
        isr_id = match_order(tx, group)
        if isr_id:
            log.advance_order_clock(tx.conn, isr_id, msg_time or utc_key(env.now()), om.control_id)
    return notes


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


def run_lifecycle(tx: Tx, group: OrderGroup, isr_id: str, env: IngestEnv) -> None:
    """Cancel, discontinue, hold, release or change step status through ``services.orders``."""
    ctx = env.orders
    reason = {"text": f"HL7 v2 ORC-1 {group.order_control}"}
    action = group.action
    if action in CANCELLING:
        orders.cancel_order(tx, isr_id, reason, action is OrderAction.DISCONTINUE, ctx)
    elif action is OrderAction.HOLD:
        orders.hold_order(tx, isr_id, ctx)
    elif action is OrderAction.RELEASE:
        orders.release_order(tx, isr_id, ctx)
    elif action in (OrderAction.START, OrderAction.COMPLETE) and group.task_status:
        for task_id in _group_tasks(tx, group, isr_id):
            current = tx.get("Task", task_id).get("status")
            if group.task_status == "completed" and current in NOT_STARTED:
                orders.change_step_status(tx, task_id, "in-progress", ctx)
            orders.change_step_status(tx, task_id, group.task_status, ctx)


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


def _existing(tx: Tx, entry: dict[str, Any], env: IngestEnv) -> str | None:
    url = str(entry["request"]["url"])
    rtype, _, query = url.partition("?")
    if not query:
        return None
    ids = env.resources.find(tx, rtype, query)
    return ids[0] if len(ids) == 1 else None


def retarget(
    tx: Tx, group: OrderGroup, isr_id: str, entries: list[dict[str, Any]], env: IngestEnv
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
        target = _existing(tx, entry, env)
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
