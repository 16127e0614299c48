"""The one order lifecycle: create, update, cancel, step status, hold and release.

Both the FHIR operations ($create-order, $update-order, $cancel-order) and the HL7 v2 intake
call these functions inside their own unit of work (``Store.write()``), so an order placed over
FHIR and one placed over MLLP follow the same identifier, scheduling and status rules.
"""

from __future__ import annotations

import copy
from typing import Any

from fhirmwl.errors import BadRequest, BusinessRuleViolation, PreconditionFailed, Unprocessable
from fhirmwl.fhir.outcome import issue
from fhirmwl.services.orders.complete import (
    complete_isr,
    complete_procedures,
    parse_order,
    ref_of,
)
from fhirmwl.services.orders.context import OrderContext, OrderResult
from fhirmwl.services.orders.graph import find_by_placer, load_order, order_bundle
from fhirmwl.services.orders.pipeline import check_worklist, written_tasks
from fhirmwl.services.orders.status import NOT_STARTED
from fhirmwl.services.orders.steps import Finding
from fhirmwl.services.orders.validate import validate_entries, validate_order
from fhirmwl.services.resources import prevalidated
from fhirmwl.store import Stored, Tx

STARTED = frozenset({"in-progress", "completed", "failed"})


def _require_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise Unprocessable(
            "the order must be a Bundle of type transaction", expression="Bundle.type"
        )
    return copy.deepcopy(bundle)


def _result(
    tx: Tx,
    isr_id: str,
    ctx: OrderContext,
    created: bool,
    issues: list[dict[str, Any]] | None = None,
) -> OrderResult:
    return OrderResult(
        isr_id, order_bundle(load_order(tx, isr_id), ctx.base), created, issues or []
    )


def create_order(tx: Tx, bundle: dict[str, Any], ctx: OrderContext) -> OrderResult:
    """Complete, validate and store a new order; the same placer number returns the stored one."""
    order = _require_transaction(bundle)
    parsed = parse_order(order)
    if parsed.isr is None:
        raise Unprocessable("the order Bundle holds no Imaging Service Request")
    if not parsed.rps:
        raise Unprocessable("the order Bundle holds no Requested Procedure")
    isr = parsed.isr["resource"]
    existing = find_by_placer(tx, isr)
    if existing:
        return _result(tx, existing, ctx, False)
    accession = complete_isr(tx, isr, ctx)
    findings: list[Finding] = []
    complete_procedures(tx, parsed, isr, ref_of(parsed.isr), accession, ctx, findings=findings)
    warnings = validate_order(tx, order)
    with prevalidated():  # every entry was just checked (R5 structure + profile) as a whole
        response = ctx.bundles.transaction(tx, order, ctx.base, "minimal")
    index = order["entry"].index(parsed.isr)
    location = response["entry"][index]["response"]["location"]
    findings += check_worklist(tx, written_tasks(response), ctx)
    issues = [*warnings, *(f.issue() for f in findings)]
    return _result(tx, location.split("/")[1], ctx, True, issues)


def _normalise_entries(order: dict[str, Any]) -> None:
    for e in order.get("entry") or []:
        res = e.get("resource") or {}
        if "request" not in e and res:
            rtype = res.get("resourceType")
            e["request"] = (
                {"method": "PUT", "url": f"{rtype}/{res['id']}"}
                if res.get("id")
                else {"method": "POST", "url": rtype}
            )


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "id")}


def _check_changes(order: dict[str, Any], graph: Any) -> None:
    """409 when a changed resource is (or belongs to) a step already started or finished."""
    stored = {f"{s.res_type}/{s.res_id}": s.resource() for s in graph.all()}
    for i, e in enumerate(order.get("entry") or []):
        url = str((e.get("request") or {}).get("url", "")).lstrip("/")
        method = str((e.get("request") or {}).get("method", "")).upper()
        res = e.get("resource")
        if method == "DELETE":
            raise BadRequest(
                f"Bundle.entry[{i}]: $update-order does not delete; use "
                "$cancel-order or a Task status change"
            )
        if method != "PUT" or res is None or url not in stored:
            if (
                method == "PUT"
                and url.split("/")[0] in ("ServiceRequest", "Task")
                and url not in stored
            ):
                raise Unprocessable(f"Bundle.entry[{i}]: {url} is not part of this order")
            continue
        if _strip(stored[url]) == _strip(res):
            continue
        rtype, rid = url.split("/", 1)
        steps = [stored[url]] if rtype == "Task" else graph.tasks_of(rid)
        started = [t for t in steps if t.get("status") in STARTED]
        if started and (rtype == "Task" or url != f"ServiceRequest/{graph.isr_id}"):
            msg = (
                f"Bundle.entry[{i}]: {url} cannot change: its step is already "
                f"{started[0].get('status')} (Task/{started[0].get('id')})"
            )
            raise BusinessRuleViolation(msg, issues=[issue("error", "business-rule", msg)])


def update_order(
    tx: Tx, isr_id: str, bundle: dict[str, Any], if_match: int | None, ctx: OrderContext
) -> OrderResult:
    """Apply a Bundle of changed (PUT) and new (POST) resources to an existing order."""
    if bundle.get("resourceType") != "Bundle":
        raise Unprocessable("$update-order needs a Bundle of changed resources")
    order = copy.deepcopy(bundle)
    order["type"] = "transaction"
    graph = load_order(tx, isr_id)
    if if_match is not None and if_match != graph.isr.version:
        raise PreconditionFailed(
            f"ServiceRequest/{isr_id} is at version {graph.isr.version}, "
            f"If-Match asked for {if_match}"
        )
    status = graph.isr.resource().get("status")
    if status in ("revoked", "completed", "entered-in-error"):
        raise BusinessRuleViolation(f"ServiceRequest/{isr_id} is {status}; it cannot change")
    _normalise_entries(order)
    _check_changes(order, graph)
    isr_ref = f"ServiceRequest/{isr_id}"
    parsed = parse_order(order, isr_ref)
    new_rps = [e for e in parsed.rps if e["request"]["method"] == "POST"]
    findings: list[Finding] = []
    if new_rps:
        isr = graph.isr.resource()
        accession = str(
            next(
                (
                    i.get("value")
                    for i in isr.get("identifier") or []
                    if "ACSN" in str(i.get("type"))
                ),
                isr_id,
            )
        )
        parsed.rps = new_rps
        complete_procedures(
            tx, parsed, isr, isr_ref, accession, ctx, len(graph.rps) + 1, findings=findings
        )
    warnings = validate_entries(tx, order)
    with prevalidated():  # each entry was just checked (R5 structure + profile)
        response = ctx.bundles.transaction(tx, order, ctx.base, "minimal")
    findings += check_worklist(tx, written_tasks(response), ctx)
    return _result(tx, isr_id, ctx, False, [*warnings, *(f.issue() for f in findings)])


def _set_status(
    tx: Tx, ctx: OrderContext, stored: Stored, status: str, reason: dict[str, Any] | None = None
) -> None:
    res = stored.resource()
    if res.get("status") == status:
        return
    res["status"] = status
    if reason and stored.res_type == "Task":
        res["statusReason"] = {"concept": reason}
    if stored.res_type == "Task":
        ctx.resources.update(tx, "Task", stored.res_id, res)  # guard: transitions + roll-up
    else:
        tx.update(stored.res_type, stored.res_id, res)


def cancel_order(
    tx: Tx, isr_id: str, reason: dict[str, Any] | None, discontinue: bool, ctx: OrderContext
) -> OrderResult:
    """ISR/RPs → revoked, not-started steps → cancelled; running steps are left and reported.

    With ``discontinue`` false (a plain CA), a started step refuses the whole cancel (409, the
    v2 "UC unable to cancel").
    """
    graph = load_order(tx, isr_id)
    notes: list[dict[str, Any]] = []
    running = [t for t in graph.tasks if t.resource().get("status") == "in-progress"]
    if running and not discontinue:
        raise BusinessRuleViolation(
            f"ServiceRequest/{isr_id} cannot be cancelled: Task/"
            f"{running[0].res_id} is in progress (discontinue instead)"
        )
    if graph.isr.resource().get("status") == "revoked":
        notes.append(
            issue("information", "informational", f"ServiceRequest/{isr_id} was already cancelled")
        )
    for task in graph.tasks:
        status = task.resource().get("status")
        if status in NOT_STARTED or status == "on-hold":
            _set_status(tx, ctx, task, "cancelled", reason)
        elif status == "in-progress":
            notes.append(
                issue(
                    "warning",
                    "business-rule",
                    f"Task/{task.res_id} is in progress and was left as is (order discontinued)",
                )
            )
    for sr in [*graph.rps, graph.isr]:
        current = tx.read("ServiceRequest", sr.res_id)
        if current and current.resource().get("status") not in (
            "revoked",
            "completed",
            "entered-in-error",
        ):
            _set_status(tx, ctx, current, "revoked")
    notes.append(issue("information", "informational", f"ServiceRequest/{isr_id} cancelled"))
    return _result(tx, isr_id, ctx, False, notes)


def change_step_status(
    tx: Tx, task_id: str, new_status: str, ctx: OrderContext, reason: dict[str, Any] | None = None
) -> Stored:
    """Move one Scheduled Procedure Step to ``new_status`` under the transition table
    (``reason``: a ``Task.statusReason`` concept, e.g. an MPPS discontinuation reason)."""
    stored = ctx.resources.read(tx, "Task", task_id)
    _set_status(tx, ctx, stored, new_status, reason)
    current = tx.read("Task", task_id)
    assert current is not None
    return current


def hold_order(tx: Tx, isr_id: str, ctx: OrderContext) -> OrderResult:
    graph = load_order(tx, isr_id)
    for task in graph.tasks:
        if task.resource().get("status") in NOT_STARTED:
            _set_status(tx, ctx, task, "on-hold")
    for sr in [*graph.rps, graph.isr]:
        if sr.resource().get("status") == "active":
            _set_status(tx, ctx, sr, "on-hold")
    return _result(tx, isr_id, ctx, False)


def _status_before_hold(tx: Tx, task_id: str) -> str:
    for version in tx.history("Task", task_id, 50, 0):
        if version.content and version.resource().get("status") != "on-hold":
            return str(version.resource().get("status"))
    return "requested"


def release_order(tx: Tx, isr_id: str, ctx: OrderContext) -> OrderResult:
    graph = load_order(tx, isr_id)
    for task in graph.tasks:
        if task.resource().get("status") == "on-hold":
            _set_status(tx, ctx, task, _status_before_hold(tx, task.res_id))
    for sr in [*graph.rps, graph.isr]:
        current = tx.read("ServiceRequest", sr.res_id)
        if current and current.resource().get("status") == "on-hold":
            _set_status(tx, ctx, current, "active")
    return _result(tx, isr_id, ctx, False)
