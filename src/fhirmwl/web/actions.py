"""The desk's order actions, as calls on the one order service (``services.orders``).

Reschedule and change station become an ``update_order`` Bundle with the changed Task (exactly
what ``$update-order`` receives), change status is ``change_step_status`` and cancel is
``cancel_order`` with discontinue semantics like ``$cancel-order``, so the desk gets the same
validation, status guard, worklist index update and outbox events as the API. Each action is
one unit of work; errors are the service's own exceptions, shown by the page.
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.errors import BadRequest, NotFound
from fhirmwl.fhir import model
from fhirmwl.fhir.references import reference_id
from fhirmwl.services import orders
from fhirmwl.services.orders.scheduling import find_station, station_device
from fhirmwl.store import Tx
from fhirmwl.web.order_view import order_of_task

# AE title: 1-16 characters of the DICOM default repertoire, no backslash or control characters.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
TASK_STATUSES = (
    "requested",
    "received",
    "accepted",
    "ready",
    "in-progress",
    "on-hold",
    "completed",
    "failed",
    "cancelled",
)


def _task(tx: Tx, task_id: str) -> tuple[dict[str, Any], str]:
    stored = tx.read("Task", task_id)
    if stored is None or stored.deleted:
        raise NotFound(f"Task/{task_id} is not known")
    task = stored.resource()
    isr_id = order_of_task(tx, task)
    if isr_id is None:
        raise NotFound(f"Task/{task_id} belongs to no order")
    return task, isr_id


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _update(
    tx: Tx, isr_id: str, task: dict[str, Any], extra: list[dict[str, Any]], ctx: Any
) -> orders.OrderResult:
    entry = {"resource": task, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [*extra, entry]}
    return orders.update_order(tx, isr_id, bundle, None, ctx)


def reschedule(tx: Tx, ctx: Any, task_id: str, local_start: str, tz: ZoneInfo) -> str:
    """Move a step to ``local_start`` (``YYYY-MM-DDTHH:MM`` on the worklist's wall clock),
    keeping its duration; returns the order id."""
    try:
        start = datetime.fromisoformat(local_start).replace(tzinfo=tz)
    except ValueError:
        raise BadRequest(f"start must be a date and time, got {local_start!r}") from None
    task, isr_id = _task(tx, task_id)
    changed = copy.deepcopy(task)
    period = dict(changed.get("requestedPeriod") or {})
    duration = timedelta(minutes=15)
    try:
        old_start = datetime.fromisoformat(str(period["start"]).replace("Z", "+00:00"))
        duration = datetime.fromisoformat(str(period["end"]).replace("Z", "+00:00")) - old_start
    except (KeyError, ValueError, TypeError):
        pass
    period["start"] = _iso(start.astimezone(ZoneInfo("UTC")))
    if "end" in period:
        period["end"] = _iso((start + duration).astimezone(ZoneInfo("UTC")))
    changed["requestedPeriod"] = period
    _update(tx, isr_id, changed, [], ctx)
    return isr_id


def change_station(tx: Tx, ctx: Any, task_id: str, ae_title: str) -> str:
    """Schedule a step on the station ``ae_title`` (its Device is created when unknown)."""
    ae_title = ae_title.strip()
    if not _AE_TITLE.match(ae_title) or not ae_title.strip():
        raise BadRequest(
            "station must be an AE title: 1 to 16 characters, no backslash",
            expression="Task.requestedPerformer",
        )
    task, isr_id = _task(tx, task_id)
    extra: list[dict[str, Any]] = []
    ref = find_station(tx, ae_title)
    if ref is None:
        ref = f"urn:uuid:{uuid.uuid4()}"
        device = station_device(ae_title)
        device["meta"]["tag"] = [model.generated_tag("scheduled-station", "web desk")]
        extra.append(
            {"fullUrl": ref, "resource": device, "request": {"method": "POST", "url": "Device"}}
        )
    changed = copy.deepcopy(task)
    others = [
        p
        for p in changed.get("requestedPerformer") or []
        if reference_id(p.get("reference"), "Device") is None
    ]
    changed["requestedPerformer"] = [{"reference": {"reference": ref}}, *others]
    _update(tx, isr_id, changed, extra, ctx)
    return isr_id


def change_status(tx: Tx, ctx: Any, task_id: str, status: str) -> str:
    if status not in TASK_STATUSES:
        raise BadRequest(
            f"status must be one of {', '.join(TASK_STATUSES)}", expression="Task.status"
        )
    task, isr_id = _task(tx, task_id)
    orders.change_step_status(tx, task_id, status, ctx)
    return isr_id


def cancel(tx: Tx, ctx: Any, isr_id: str, reason: str) -> orders.OrderResult:
    """Cancel (discontinue) the order like ``$cancel-order``: running steps are left and
    reported."""
    concept = {"text": reason.strip()} if reason.strip() else None
    return orders.cancel_order(tx, isr_id, concept, True, ctx)
