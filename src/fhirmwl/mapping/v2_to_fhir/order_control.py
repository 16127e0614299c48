"""ORC-1 (order control) with ORC-5 (order status) → broker action and FHIR statuses.

One table for the whole broker (spec/ihe-appendix-b.md §4.3, "recommended broker table"): the v2
intake uses it to fill the Bundle and the service layer uses `OrderAction` to decide how to apply
it (create, update, cancel, discontinue only the steps not started, hold, release).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OrderAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    STATUS = "status"  # status change without data change (SC)
    START = "start"  # SPS in progress (NW/SC with ORC-5 IP)
    COMPLETE = "complete"
    CANCEL = "cancel"
    DISCONTINUE = "discontinue"  # not-started steps cancelled, running ones unchanged
    HOLD = "hold"
    RELEASE = "release"
    IGNORE = "ignore"


@dataclass(frozen=True)
class ControlOutcome:
    action: OrderAction
    request_status: str  # ServiceRequest.status of ISR and RP
    task_status: str | None  # Task.status; None = keep the current one


_OUTCOME = {
    OrderAction.CREATE: ControlOutcome(OrderAction.CREATE, "active", "requested"),
    OrderAction.UPDATE: ControlOutcome(OrderAction.UPDATE, "active", None),
    OrderAction.STATUS: ControlOutcome(OrderAction.STATUS, "active", None),
    OrderAction.START: ControlOutcome(OrderAction.START, "active", "in-progress"),
    OrderAction.COMPLETE: ControlOutcome(OrderAction.COMPLETE, "completed", "completed"),
    OrderAction.CANCEL: ControlOutcome(OrderAction.CANCEL, "revoked", "cancelled"),
    OrderAction.DISCONTINUE: ControlOutcome(OrderAction.DISCONTINUE, "revoked", "cancelled"),
    OrderAction.HOLD: ControlOutcome(OrderAction.HOLD, "on-hold", "on-hold"),
    OrderAction.RELEASE: ControlOutcome(OrderAction.RELEASE, "active", None),
    OrderAction.IGNORE: ControlOutcome(OrderAction.IGNORE, "active", None),
}

# ORC-1 → action when ORC-5 does not refine it. Reply codes a filler sends back (CR, DR, XR, HR)
# are accepted as the state they confirm, so that a broker behind a RIS stays in step.
_BY_ORC1 = {
    "NW": OrderAction.CREATE,
    "CH": OrderAction.CREATE,  # child order of a PA parent (SS-MIX2)
    "PA": OrderAction.IGNORE,  # parent repeated for its children: nothing of its own to do
    "XO": OrderAction.UPDATE,
    "XR": OrderAction.UPDATE,
    "XX": OrderAction.UPDATE,
    "SC": OrderAction.STATUS,
    "CA": OrderAction.CANCEL,
    "CR": OrderAction.CANCEL,
    "OC": OrderAction.CANCEL,
    "DC": OrderAction.DISCONTINUE,
    "DR": OrderAction.DISCONTINUE,
    "OD": OrderAction.DISCONTINUE,
    "HD": OrderAction.HOLD,
    "HR": OrderAction.HOLD,
    "OH": OrderAction.HOLD,
    "RL": OrderAction.RELEASE,
}
# ORC-5 refinements for the codes that carry a status (NW_IP, XO_CM, SC_IP/CM/CA/DC/HD …).
_BY_ORC5 = {
    "IP": OrderAction.START,
    "CM": OrderAction.COMPLETE,
    "CA": OrderAction.CANCEL,
    "DC": OrderAction.DISCONTINUE,
    "HD": OrderAction.HOLD,
}
_REFINABLE = {"NW", "CH", "XO", "XR", "XX", "SC"}

SUPPORTED_ORDER_CONTROL = sorted(_BY_ORC1)


def order_control_outcome(orc1: str, orc5: str) -> ControlOutcome | None:
    """Outcome for (ORC-1, ORC-5); None when ORC-1 is not a code the broker accepts."""
    orc1, orc5 = orc1.strip().upper(), orc5.strip().upper()
    action = _BY_ORC1.get(orc1)
    if action is None:
        return None
    if orc1 in _REFINABLE and orc5 in _BY_ORC5:
        action = _BY_ORC5[orc5]
    return _OUTCOME[action]
