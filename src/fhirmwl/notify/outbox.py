"""The durable outbox: topic events written in the same transaction as the change they report.

A ``WriteHook`` turns each unit of work's touched ServiceRequests and Tasks into numbered events
(``notify_event``) before commit, so an event exists exactly when its change does: nothing is
lost by a crash between commit and delivery. On PostgreSQL an advisory lock serialises the
writers of events so event numbers become visible in order (a dispatcher never skips a number
that commits late). Subscriptions get their delivery state row (``notify_sub``) in the
transaction that creates them, positioned after the last event.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from fhirmwl.notify.topics import Change, classify
from fhirmwl.services.orders.graph import referencing
from fhirmwl.services.orders.status import ref_id
from fhirmwl.store import Tx
from fhirmwl.store.migrations import Migration

OUTBOX_MIGRATION = Migration(
    41,
    "notification outbox and subscription delivery state",
    (
        """CREATE TABLE notify_event (event_no {autoinc}, created TEXT NOT NULL,
            topic TEXT NOT NULL, order_id TEXT NOT NULL, focus_type TEXT NOT NULL,
            focus_id TEXT NOT NULL, focus_version INTEGER NOT NULL, context TEXT NOT NULL)""",
        """CREATE TABLE notify_sub (sub_id TEXT PRIMARY KEY, cursor BIGINT NOT NULL,
            events_count BIGINT NOT NULL DEFAULT 0, handshake INTEGER NOT NULL DEFAULT 0,
            error_count INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
            last_sent DOUBLE PRECISION NOT NULL DEFAULT 0,
            lease_until DOUBLE PRECISION NOT NULL DEFAULT 0)""",
        """CREATE TABLE notify_delivery (sub_id TEXT NOT NULL, event_number BIGINT NOT NULL,
            event_no BIGINT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sub_id, event_number))""",
    ),
)

EVENT_LOCK = 4243


def _order_of(tx: Tx, rtype: str, res: dict[str, Any]) -> tuple[str | None, bool]:
    """(ISR id, is-the-ISR) for a ServiceRequest or Task."""
    sr_id = next((ref_id(b, "ServiceRequest") for b in res.get("basedOn") or []), None)
    if rtype == "ServiceRequest":
        return (sr_id, False) if sr_id else (str(res.get("id")), True)
    if sr_id is None:
        return None, False
    rp = tx.read("ServiceRequest", sr_id)
    if rp is None or rp.content is None:
        return None, False
    isr_id = next((ref_id(b, "ServiceRequest") for b in rp.resource().get("basedOn") or []), None)
    return isr_id, False


def order_context(tx: Tx, isr_id: str) -> dict[str, list[str]]:
    """Filter values of an order: station AE titles and modalities of its steps."""
    rp_ids = [
        i for _, i in tx.references_to("ServiceRequest", [isr_id], "ServiceRequest", "based-on")
    ]
    tasks = tx.read_many(referencing(tx, rp_ids, "Task")) if rp_ids else []
    modalities: set[str] = set()
    devices: set[tuple[str, str]] = set()
    for t in tasks:
        res = t.resource()
        for inp in res.get("input") or []:
            for c in (inp.get("valueCodeableConcept") or {}).get("coding") or []:
                if c.get("code"):
                    modalities.add(str(c["code"]))
        for perf in res.get("requestedPerformer") or []:
            dev = ref_id(perf.get("reference"), "Device")
            if dev:
                devices.add(("Device", dev))
    stations = {
        n["value"]
        for d in tx.read_many(sorted(devices))
        for n in d.resource().get("name") or []
        if n.get("type") == "registered-name" and n.get("value")
    }
    return {"station": sorted(stations), "modality": sorted(modalities)}


class OutboxHook:
    """WriteHook: events for touched orders, state rows for new Subscriptions."""

    def __init__(self) -> None:
        self.wake = threading.Event()

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        changes: list[Change] = []
        subs = [rid for rtype, rid in touched if rtype == "Subscription"]
        for rtype, rid in touched:
            if rtype not in ("ServiceRequest", "Task"):
                continue
            stored = tx.read(rtype, rid)
            if stored is None or stored.content is None:
                continue
            current = stored.resource()
            prev_row = tx.vread(rtype, rid, stored.version - 1) if stored.version > 1 else None
            previous = prev_row.resource() if prev_row and prev_row.content else None
            order_id, is_isr = _order_of(tx, rtype, current)
            changes.append(Change(rtype, rid, stored.version, current, previous, order_id, is_isr))
        orders = {c.order_id for c in changes if c.order_id}
        if not orders and not subs:
            return
        if tx.dialect == "postgresql":
            tx.conn.execute("SELECT pg_advisory_xact_lock(?)", (EVENT_LOCK,))
        events = classify(changes, {o: order_context(tx, o) for o in orders})
        now = tx.store.clock()
        tx.conn.executemany(
            "INSERT INTO notify_event (created, topic, order_id, focus_type, focus_id, "
            "focus_version, context) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    now,
                    e.topic,
                    e.order_id,
                    e.focus_type,
                    e.focus_id,
                    e.focus_version,
                    orjson.dumps(e.context).decode(),
                )
                for e in events
            ],
        )
        if subs:
            self._subscriptions(tx, subs)
        if events or subs:
            tx.after_commit.append(self.wake.set)

    @staticmethod
    def _subscriptions(tx: Tx, sub_ids: list[str]) -> None:
        last = tx.conn.execute("SELECT MAX(event_no) FROM notify_event").fetchone()[0] or 0
        for sid in sub_ids:
            stored = tx.read("Subscription", sid)
            known = tx.conn.execute("SELECT 1 FROM notify_sub WHERE sub_id = ?", (sid,)).fetchone()
            if stored is None or stored.deleted:
                tx.conn.execute("DELETE FROM notify_sub WHERE sub_id = ?", (sid,))
                tx.conn.execute("DELETE FROM notify_delivery WHERE sub_id = ?", (sid,))
            elif not known:
                tx.conn.execute(
                    "INSERT INTO notify_sub (sub_id, cursor) VALUES (?, ?)", (sid, last)
                )
