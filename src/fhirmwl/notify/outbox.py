"""The durable outbox: topic events written in the same transaction as the change they report.

A ``WriteHook`` turns each unit of work's touched ServiceRequests and Tasks into events before
commit, so an event exists exactly when its change does: nothing is lost by a crash between
commit and delivery. Consumers (the dispatcher, the outbound HL7 worker, the desk's change
feed) read ``notify_event`` by number, ``event_no > cursor``, so numbers must become visible in
order: a number that commits late must never be behind a cursor that already passed it.

SQLite serialises writers, so there the hook inserts numbered events directly.

PostgreSQL: concurrent writers must not wait for each other's COMMIT (an advisory lock held
through commit made every order-writing transaction wait for the previous one's: 74 msg/s on 8
MLLP connections). So a writer stages its events, unnumbered and without any lock, in
``notify_event_pending`` (its own identity column, the staging id, keeps the order of one
transaction's events). ``sequence`` numbers them: in its own short transaction under a
per-schema advisory lock it moves every pending row into ``notify_event`` in one statement,
ordered by staging id. Only committed events are ever numbered, and one sequencer at a time
commits numbers, so the numbers visible at any moment are a prefix. The writer runs it right
after its own commit (an after-commit callback, before the ACK or 201 goes out), so a change that
was acknowledged has its event numbered; the dispatcher and the outbound worker run it (after a
cheap "anything pending?" look) before reading, which numbers what a writer killed between its
commit and its sequencing left behind. Events of one transaction keep their order; two
transactions on one order are ordered by its row locks (the second one stages its events after
the first committed), so their events are numbered in commit order; two independent
transactions may be numbered in either order. The sequencer commits with ``synchronous_commit
= off``: losing it in a server crash only puts its rows back in the pending table (the move is
one transaction), and whatever a consumer durably did with a number flushed the WAL past it.

Subscriptions get their delivery state row (``notify_sub``) in the transaction that creates
them, positioned after the last numbered event. Events already numbered then are not delivered
to it; events still pending then (changes committing concurrently, or committed but not yet
sequenced) get higher numbers and are. A change acknowledged before the Subscription was
created is never delivered to it (its sequencing ended before the acknowledgement).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson

from fhirmwl.notify.topics import Change, classify
from fhirmwl.services.orders.graph import referencing
from fhirmwl.services.orders.status import ref_id
from fhirmwl.store import Store, Tx
from fhirmwl.store.db import PostgresDatabase
from fhirmwl.store.migrations import Migration

log = logging.getLogger("fhirmwl.notify")

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

PENDING_MIGRATION = Migration(
    230,
    "PostgreSQL: outbox events staged unnumbered, numbered after commit by the sequencer",
    (
        """postgresql: CREATE TABLE notify_event_pending (staging_id {autoinc},
            created TEXT NOT NULL, topic TEXT NOT NULL, order_id TEXT NOT NULL,
            focus_type TEXT NOT NULL, focus_id TEXT NOT NULL, focus_version INTEGER NOT NULL,
            context TEXT NOT NULL)""",
    ),
)

# The sequencer's advisory lock, hashed with the schema: two schemas on one database (tests,
# benchmarks, tenants) do not wait on each other.
SEQUENCER_KEY = "fhirmwl.notify_event.sequencer"
_CHUNK = 400  # events per INSERT (SQLite allows 32,766 parameters per statement)
_EVENT_COLS = "created, topic, order_id, focus_type, focus_id, focus_version, context"
_MOVE = (
    f"WITH moved AS (DELETE FROM notify_event_pending RETURNING staging_id, {_EVENT_COLS}) "
    f"INSERT INTO notify_event ({_EVENT_COLS}) SELECT {_EVENT_COLS} FROM moved "
    "ORDER BY staging_id"
)
# The whole sequencer, one round trip (``PostgresDatabase.script``): ``synchronous_commit = off``
# for this transaction only, the lock until it ends, then the move.
_SEQUENCER = (
    "SELECT set_config('synchronous_commit', 'off', true), "
    f"pg_advisory_xact_lock(hashtextextended(current_schema() || '{SEQUENCER_KEY}', 0)); " + _MOVE
)


def sequence(store: Store) -> int:
    """Number every committed pending event (PostgreSQL), in staging order; return how many.

    Its own transaction, one at a time per schema (the advisory lock is held until commit, so
    the next sequencer's DELETE sees this one's moves and its numbers come after), sent as one
    round trip. A no-op on SQLite, whose writers number their events directly.
    """
    if not isinstance(store.db, PostgresDatabase):
        return 0
    return max(0, store.db.script(_SEQUENCER))


def sequence_pending(store: Store) -> int:
    """``sequence`` when anything is pending: consumers call it before reading the outbox.

    The look is one index probe in a read transaction, so an idle poll takes no lock.
    """
    if store.db.dialect != "postgresql":
        return 0
    with store.read() as tx:
        row = tx.conn.execute(
            "SELECT staging_id FROM notify_event_pending ORDER BY staging_id LIMIT 1"
        ).fetchone()
    return sequence(store) if row else 0


def pending_count(tx: Tx) -> int:
    """Events committed but not numbered yet (0 on SQLite): for the admin page and metrics."""
    if tx.dialect != "postgresql":
        return 0
    return int(tx.conn.execute("SELECT COUNT(*) FROM notify_event_pending").fetchone()[0])


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
        events = classify(changes, {o: order_context(tx, o) for o in orders})
        now = tx.store.clock()
        rows = [
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
        ]
        staged = tx.dialect == "postgresql"
        table = "notify_event_pending" if staged else "notify_event"
        for i in range(0, len(rows), _CHUNK):
            # Multi-row INSERTs: one round trip each; VALUES keeps the order (of staging ids).
            chunk = rows[i : i + _CHUNK]
            tx.conn.execute(
                f"INSERT INTO {table} ({_EVENT_COLS}) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [v for row in chunk for v in row],
            )
        if rows and staged:
            tx.after_commit.append(self._sequencer(tx.store))
        if subs:
            self._subscriptions(tx, subs)
        if events or subs:
            tx.after_commit.append(self.wake.set)

    @staticmethod
    def _sequencer(store: Store) -> Callable[[], None]:
        def run() -> None:
            # After commit: a failure must not turn a committed change into an error answer;
            # the dispatcher's poll numbers what is left pending.
            try:
                sequence(store)
            except Exception:  # noqa: BLE001
                log.warning("outbox: numbering events after commit failed", exc_info=True)

        return run

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
