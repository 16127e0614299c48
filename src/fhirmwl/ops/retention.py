"""Retention: remove what is older than the site keeps, in small batches.

Four independent settings (days; 0 keeps forever):

- ``retention_history_days``: superseded resource versions, i.e. the rows of
  ``resource_history`` (the current version lives in ``resource`` and always stays);
- ``retention_v2_log_days``: rows of the HL7 v2 message log, inbound and outbound (a
  retransmission older than this is no longer recognised as one; pending outbound rows stay);
- ``retention_outbox_days``: notification events every subscription and every outbound HL7
  destination has already been given (an event a consumer still waits for is kept);
- ``retention_orders_days``: orders whose ImagingServiceRequest is completed, revoked or
  entered-in-error and unchanged for that long: the request, its requested procedures, steps
  and studies are deleted through the store (index and worklist rows go with them; Patients and
  Encounters stay, other orders may share them), and so is the order's HL7 v2 message clock
  (``order_control_state``).

``serve`` runs a purge every ``retention_interval`` seconds in the background; ``fhirmwl purge
[--dry-run]`` runs one by hand and prints what it removed (or would remove). Each batch is its
own short transaction, so HL7 ACKs and C-FINDs never wait behind a long purge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fhirmwl.fhir.dates import utc_key
from fhirmwl.store import Store, Tx

if TYPE_CHECKING:
    from fhirmwl.config import Settings
    from fhirmwl.services.container import Services

log = logging.getLogger("fhirmwl.ops")
FINAL_ORDER_STATUSES = ("completed", "revoked", "entered-in-error")


@dataclass(frozen=True)
class RetentionPolicy:
    history_days: int = 0
    v2_log_days: int = 0
    outbox_days: int = 0
    orders_days: int = 0
    audit_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            settings.retention_history_days,
            settings.retention_v2_log_days,
            settings.retention_outbox_days,
            settings.retention_orders_days,
            settings.retention_audit_days,
        )

    @property
    def active(self) -> bool:
        days = (self.history_days, self.v2_log_days, self.outbox_days, self.orders_days)
        return any((*days, self.audit_days))


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _table_exists(tx: Tx, name: str) -> bool:
    if tx.conn.dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_name = ? AND table_schema = current_schema()"
        )
    return tx.conn.execute(sql, (name,)).fetchone() is not None


# Each step selects up to ``limit`` keys older than the cutoff and deletes them (unless dry run).
def _history(tx: Tx, cutoff: datetime, limit: int, apply: bool) -> int:
    """History holds only superseded versions (the current one lives in ``resource``)."""
    rows = tx.conn.execute(
        "SELECT res_type, res_id, version FROM resource_history WHERE lu < ? LIMIT ?",
        (utc_key(_instant(cutoff)), limit),
    ).fetchall()
    if apply:
        tx.conn.executemany(
            "DELETE FROM resource_history WHERE res_type = ? AND res_id = ? AND version = ?",
            [tuple(r) for r in rows],
        )
    return len(rows)


def _v2_log(tx: Tx, cutoff: datetime, limit: int, apply: bool) -> int:
    """Inbound message log rows, then outbound ones that are no longer pending."""
    count = 0
    if _table_exists(tx, "v2_message_log"):
        rows = tx.conn.execute(
            "SELECT id FROM v2_message_log WHERE received_at < ? ORDER BY id LIMIT ?",
            (_instant(cutoff), limit),
        ).fetchall()
        if apply:
            tx.conn.executemany("DELETE FROM v2_message_log WHERE id = ?", [(r[0],) for r in rows])
        count += len(rows)
    if count < limit and _table_exists(tx, "hl7_out_log"):
        rows = tx.conn.execute(
            "SELECT id FROM hl7_out_log WHERE created < ? AND status <> 'pending' "
            "ORDER BY id LIMIT ?",
            (_instant(cutoff), limit - count),
        ).fetchall()
        if apply:
            tx.conn.executemany("DELETE FROM hl7_out_log WHERE id = ?", [(r[0],) for r in rows])
        count += len(rows)
    return count


def _outbox(tx: Tx, cutoff: datetime, limit: int, apply: bool) -> int:
    """Events every consumer has passed: each Subscription and each outbound HL7 destination."""
    if not _table_exists(tx, "notify_event"):
        return 0
    cursors = ["SELECT cursor FROM notify_sub"]
    if _table_exists(tx, "hl7_out_dest"):
        cursors.append("SELECT cursor FROM hl7_out_dest")
    rows = tx.conn.execute(
        "SELECT event_no FROM notify_event WHERE created < ? AND event_no <= "
        "(SELECT COALESCE(MIN(cursor), (SELECT MAX(event_no) FROM notify_event)) FROM ("
        + " UNION ALL ".join(cursors)
        + ") consumers) ORDER BY event_no LIMIT ?",
        (_instant(cutoff), limit),
    ).fetchall()
    if apply:
        keys = [(r[0],) for r in rows]
        tx.conn.executemany("DELETE FROM notify_delivery WHERE event_no = ?", keys)
        tx.conn.executemany("DELETE FROM notify_event WHERE event_no = ?", keys)
    return len(rows)


def _orders(tx: Tx, cutoff: datetime, limit: int, apply: bool) -> int:
    """Delete finished order graphs; counts ImagingServiceRequests."""
    from fhirmwl.services.orders.graph import load_order

    marks = ", ".join("?" * len(FINAL_ORDER_STATUSES))
    status = tx.pid("ServiceRequest", "status")
    rows = tx.conn.execute(
        "SELECT DISTINCT r.res_id FROM resource r JOIN idx_token t ON t.rid = r.rid "
        "AND t.pid = ? WHERE r.res_type = 'ServiceRequest' AND r.deleted = 0 AND r.lu < ? "
        f"AND t.code IN ({marks}) ORDER BY r.res_id LIMIT ?",
        (-1 if status is None else status, utc_key(_instant(cutoff)), *FINAL_ORDER_STATUSES, limit),
    ).fetchall()
    count = 0
    clock = apply and bool(rows) and _table_exists(tx, "order_control_state")
    for (isr_id,) in rows:
        stored = tx.read("ServiceRequest", isr_id)
        if stored is None or stored.deleted:
            continue
        res = stored.resource()
        if any("ServiceRequest/" in str(b.get("reference")) for b in res.get("basedOn") or []):
            continue  # a requested procedure: it goes with its order
        count += 1
        if apply:
            graph = load_order(tx, isr_id)
            for part in [*graph.tasks, *graph.studies, *graph.rps, graph.isr]:
                tx.delete(part.res_type, part.res_id)
            if clock:  # the order's HL7 v2 message clock goes with it
                tx.conn.execute("DELETE FROM order_control_state WHERE isr_id = ?", (isr_id,))
    return count


def _audit(tx: Tx, cutoff: datetime, limit: int, apply: bool) -> int:
    from fhirmwl.audit.store import purge_before

    if not _table_exists(tx, "audit_event"):
        return 0
    return purge_before(tx.conn, _instant(cutoff), limit, apply)


Step = Callable[[Tx, datetime, int, bool], int]
STEPS: tuple[tuple[str, str, Step], ...] = (
    # Orders first: their deletion creates history rows the history step may then remove.
    ("orders", "orders_days", _orders),
    ("history", "history_days", _history),
    ("v2_log", "v2_log_days", _v2_log),
    ("outbox", "outbox_days", _outbox),
    ("audit", "audit_days", _audit),
)


def purge(
    store: Store,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    batch: int = 500,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Apply the policy; return the number of rows (orders for ``orders``) per kind."""
    moment = now or datetime.now(UTC)
    counts: dict[str, int] = {}
    for name, attr, step in STEPS:
        days = int(getattr(policy, attr))
        if days <= 0:
            continue
        cutoff = moment - timedelta(days=days)
        total = 0
        while not (stop and stop.is_set()):
            if dry_run:
                with store.read() as tx:
                    total = step(tx, cutoff, 1 << 62, False)
                break
            with store.write() as tx:
                done = step(tx, cutoff, batch, True)
            total += done
            if done < batch:
                break
        counts[name] = total
    return counts


class RetentionWorker:
    """Background purge in ``serve``: one pass every ``retention_interval`` seconds."""

    name = "retention"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.policy = RetentionPolicy.from_settings(services.settings)
        self.interval = max(1, int(services.settings.retention_interval))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.policy.active:
                try:
                    counts = purge(self.services.store, self.policy, stop=self._stop)
                    if any(counts.values()):
                        log.info("retention: removed %s", counts)
                except Exception:  # noqa: BLE001 - try again next interval
                    log.exception("retention pass failed")
            self._stop.wait(self.interval)


def install(services: Services) -> None:
    if not any(name == "retention" for name, _ in services.listener_factories):
        factory: Callable[[Any], Any] = RetentionWorker
        services.listener_factories.append(("retention", factory))
