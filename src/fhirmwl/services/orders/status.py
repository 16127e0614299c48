"""Status rules of the order lifecycle (spec digest ig.md §4.4, ihe-appendix-b.md §4.3).

One table of legal Task (Scheduled Procedure Step) transitions, enforced as a ``ResourceService``
guard so that plain REST updates, the order operations and the HL7 v2 intake obey the same rules;
and the roll-up that makes the Requested Procedure and the Imaging Service Request follow their
steps (all completed → completed; all cancelled → revoked).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.errors import BusinessRuleViolation
from fhirmwl.fhir.outcome import issue
from fhirmwl.fhir.references import reference_id
from fhirmwl.mapping.v2_to_fhir.order_control import (
    ControlOutcome,
    OrderAction,
    order_control_outcome,
)
from fhirmwl.store import Tx

NOT_STARTED = frozenset({"draft", "requested", "received", "accepted", "ready"})
TERMINAL = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})
VISIBLE = NOT_STARTED | {"in-progress"}

_EIE = "entered-in-error"
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "received", "accepted", "ready", "cancelled", _EIE}),
    "requested": frozenset(
        {"received", "accepted", "rejected", "ready", "in-progress", "on-hold", "cancelled", _EIE}
    ),
    "received": frozenset(
        {"accepted", "rejected", "ready", "in-progress", "on-hold", "cancelled", _EIE}
    ),
    "accepted": frozenset({"ready", "in-progress", "on-hold", "cancelled", _EIE}),
    "ready": frozenset({"in-progress", "on-hold", "cancelled", _EIE}),
    # MPPS DISCONTINUED may end a running step as cancelled (or failed).
    "in-progress": frozenset({"completed", "failed", "on-hold", "cancelled", _EIE}),
    "on-hold": frozenset(
        {"requested", "received", "accepted", "ready", "in-progress", "cancelled", _EIE}
    ),
    "completed": frozenset({_EIE}),
    "cancelled": frozenset({_EIE}),
    "failed": frozenset({_EIE}),
    "rejected": frozenset({_EIE}),
    _EIE: frozenset(),
}


def check_transition(old: str, new: str, task_ref: str = "Task") -> None:
    """Raise 409 (business-rule) listing the allowed next statuses when old → new is illegal."""
    if old == new:
        return
    allowed = TRANSITIONS.get(old, frozenset())
    if new in allowed:
        return
    listed = ", ".join(sorted(allowed)) or "none (final status)"
    message = f"{task_ref}: status {old} cannot change to {new}; allowed: {listed}"
    raise BusinessRuleViolation(
        message,
        expression="Task.status",
        issues=[issue("error", "business-rule", message, "Task.status")],
    )


def rolled_up(task_statuses: list[str], current: str) -> str:
    """ServiceRequest.status implied by its steps' statuses (unchanged when undecided)."""
    live = [s for s in task_statuses if s != _EIE]
    if not live or any(s not in TERMINAL for s in live):
        return current
    if all(s in ("cancelled", "rejected", "failed") for s in live):
        return "revoked" if current in ("active", "on-hold", "draft") else current
    if current in ("revoked", "entered-in-error"):
        return current  # a discontinued order stays revoked when its running step ends
    return "completed"


def ref_id(reference: dict[str, Any] | None, rtype: str) -> str | None:
    return reference_id(reference, rtype)


def _roll_up_request(tx: Tx, rp_id: str, task_id: str | None, new_status: str) -> None:
    stored = tx.read("ServiceRequest", rp_id)
    if stored is None or stored.deleted:
        return
    rp = stored.resource()
    task_ids = [i for _, i in tx.references_to("ServiceRequest", [rp_id], "Task", "based-on")]
    statuses = [new_status] if task_id is None else []
    for sibling in tx.read_many([("Task", i) for i in task_ids]):
        status = new_status if sibling.res_id == task_id else sibling.resource().get("status")
        statuses.append(str(status))
    if task_id is not None and task_id not in task_ids:
        statuses.append(new_status)
    status = rolled_up(statuses, rp.get("status", "active"))
    if status != rp.get("status"):
        tx.update("ServiceRequest", rp_id, dict(rp, status=status))
    isr_id = next((ref_id(b, "ServiceRequest") for b in rp.get("basedOn") or []), None)
    if isr_id:
        _roll_up_isr(tx, isr_id)


def _roll_up_isr(tx: Tx, isr_id: str) -> None:
    stored = tx.read("ServiceRequest", isr_id)
    if stored is None or stored.deleted:
        return
    isr = stored.resource()
    rp_ids = [
        i for _, i in tx.references_to("ServiceRequest", [isr_id], "ServiceRequest", "based-on")
    ]
    statuses = [
        str(r.resource().get("status"))
        for r in tx.read_many([("ServiceRequest", i) for i in rp_ids])
    ]
    mapped = [
        "completed" if s == "completed" else "cancelled" if s == "revoked" else "requested"
        for s in statuses
    ]
    status = rolled_up(mapped, isr.get("status", "active"))
    if status != isr.get("status"):
        tx.update("ServiceRequest", isr_id, dict(isr, status=status))


def task_status_guard(
    tx: Tx, rtype: str, previous: dict[str, Any] | None, new: dict[str, Any] | None
) -> None:
    """ResourceService guard: legal Task transitions, then roll the status up to RP and ISR."""
    if rtype != "Task" or new is None:
        return
    new_status = str(new.get("status", ""))
    if previous is not None:
        old_status = str(previous.get("status", ""))
        check_transition(old_status, new_status, f"Task/{previous.get('id', '')}")
        if old_status == new_status:
            return
    elif new_status not in TERMINAL:
        return  # a new, live step changes no roll-up
    for based_on in new.get("basedOn") or []:
        rp_id = ref_id(based_on, "ServiceRequest")
        if rp_id:
            _roll_up_request(tx, rp_id, new.get("id"), new_status)


def order_control_action(orc1: str, orc5: str) -> ControlOutcome | None:
    """(ORC-1, ORC-5) → lifecycle action and target statuses, for the HL7 v2 intake.

    The table itself lives with the v2 mapping (``mapping.v2_to_fhir.order_control``) so that
    the mapping and the service layer read one definition; this is the service-layer entry.
    """
    return order_control_outcome(orc1, orc5)


__all__ = [
    "ControlOutcome",
    "OrderAction",
    "check_transition",
    "order_control_action",
    "rolled_up",
    "task_status_guard",
]
