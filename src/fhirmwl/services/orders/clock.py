"""The per-order message clock: order control is applied in MSH-7 order, on both backends.

One row per order key (the placer order number, else the filler number, else the accession
number, as ``system|value``) holds the MSH-7 of the newest message applied to that order, its
control id, the stored order's id once it exists, and whether the newest message cancelled it.
``lock`` creates the row when it is missing and locks it (an upsert whose ``DO UPDATE`` row lock
is that of ``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises
writers) in the message's own unit of work, so two messages for one order on two connections or
two processes are decided one after the other, each seeing what the other committed. A cancel
that arrives before its order is remembered here (``cancelled`` with no order id), so the late
``NW`` is refused instead of resurrecting the order.

The v2 intake's earlier clock table (``v2_order_state``, keyed by order id, migration 30) is
still read as a fallback for orders last changed before this table existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirmwl.store import Tx
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

MIGRATION = Migration(
    100,
    "order control clock per order key (MSH-7 ordering, cancels before their order)",
    (
        """CREATE TABLE order_control_state (order_key TEXT PRIMARY KEY, isr_id TEXT,
            msg_time TEXT NOT NULL, control_id TEXT NOT NULL,
            cancelled INTEGER NOT NULL DEFAULT 0)""",
    ),
)


def register_migrations() -> None:
    if not any(m.version == MIGRATION.version for m in MIGRATIONS):
        register(MIGRATION)


@dataclass
class OrderClock:
    """The locked state of one order key within the current unit of work."""

    key: str
    msg_time: str  # "" when no message was applied yet
    control_id: str
    isr_id: str | None
    cancelled: bool


def order_key(system: str, value: str) -> str:
    return f"{system}|{value}"


def lock(tx: Tx, key: str) -> OrderClock:
    """The clock row of ``key`` (created empty when missing), locked until commit.

    One statement: the upsert's ``DO UPDATE`` takes the same row lock as ``SELECT … FOR
    UPDATE`` on PostgreSQL (a second writer of the key waits for the first to commit, then
    reads its values); SQLite's write lock serialises writers anyway.
    """
    row = tx.conn.execute(
        "INSERT INTO order_control_state (order_key, isr_id, msg_time, control_id, cancelled) "
        "VALUES (?, NULL, '', '', 0) ON CONFLICT (order_key) DO UPDATE SET "
        "order_key = excluded.order_key RETURNING msg_time, control_id, isr_id, cancelled",
        (key,),
    ).fetchone()
    return OrderClock(key, str(row[0]), str(row[1]), row[2], bool(row[3]))


def with_legacy(tx: Tx, clock: OrderClock, isr_id: str) -> OrderClock:
    """An empty clock takes the MSH-7 that the earlier ``v2_order_state`` table kept."""
    if not clock.msg_time:
        legacy = tx.conn.execute(
            "SELECT msg_time, control_id FROM v2_order_state WHERE isr_id = ?", (isr_id,)
        ).fetchone()
        if legacy:
            clock.msg_time, clock.control_id = str(legacy[0]), str(legacy[1])
    return clock


def advance(
    tx: Tx, clock: OrderClock, msg_time: str, control_id: str, isr_id: str | None, cancelled: bool
) -> None:
    """Record the message just applied (never moves the clock backwards)."""
    if clock.msg_time and msg_time < clock.msg_time:
        msg_time, control_id = clock.msg_time, clock.control_id
    tx.conn.execute(
        "UPDATE order_control_state SET msg_time = ?, control_id = ?, isr_id = ?, cancelled = ? "
        "WHERE order_key = ?",
        (msg_time, control_id, isr_id or clock.isr_id, int(cancelled), clock.key),
    )
