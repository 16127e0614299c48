"""Identifiers the broker assigns: Accession Number, Requested Procedure ID, SPS ID.

The accession number comes from a counter row incremented inside the order's own transaction:
on PostgreSQL the row lock serialises concurrent creators (also across processes) and a rolled
back order gives its number back; on SQLite the database write lock does the same. A value that
already exists (imported by hand, counter reset) is skipped, never reused.
"""

from __future__ import annotations

from datetime import datetime

from fhirmwl.errors import BadRequest
from fhirmwl.fhir import model
from fhirmwl.store import Tx
from fhirmwl.store.migrations import Migration, register

COUNTER_MIGRATION = Migration(
    40,
    "order identifier counters",
    ("CREATE TABLE order_counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",),
)


def register_migrations() -> None:
    from fhirmwl.store.migrations import MIGRATIONS

    if not any(m.version == COUNTER_MIGRATION.version for m in MIGRATIONS):
        register(COUNTER_MIGRATION)


def next_counter(tx: Tx, name: str) -> int:
    """Increment and return the named counter within ``tx`` (row locked until commit)."""
    updated = tx.conn.execute("UPDATE order_counter SET value = value + 1 WHERE name = ?", (name,))
    if updated.rowcount == 0:
        tx.conn.execute(
            "INSERT INTO order_counter (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
        tx.conn.execute("UPDATE order_counter SET value = value + 1 WHERE name = ?", (name,))
    row = tx.conn.execute("SELECT value FROM order_counter WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def format_accession(pattern: str, seq: int, now: datetime) -> str:
    try:
        value = pattern.format(seq=seq, now=now)
    except (KeyError, IndexError, ValueError) as exc:
        raise BadRequest(f"accession_pattern {pattern!r} is invalid: {exc}") from None
    if not value or len(value) > 16:
        raise BadRequest(f"accession number {value!r} from the pattern is not 1-16 characters")
    return value


def assign_accession(tx: Tx, pattern: str, system: str, now: datetime) -> str:
    """A new accession number, unique for ``system`` in the store."""
    for _ in range(1000):
        value = format_accession(pattern, next_counter(tx, "accession"), now)
        if tx.find_unique(model.ACSN[1], system, value) is None:
            return value
    raise BadRequest("accession_pattern yields no free value; widen the pattern")


def rp_id(accession: str, index: int) -> str:
    """Requested Procedure ID (0040,1001), SH: the accession number and a running number."""
    return f"{accession[:13]}.{index}"


def sps_id(rpid: str, index: int) -> str:
    """Scheduled Procedure Step ID (0040,0009), SH."""
    return f"{rpid[:13]}.{index}"[:16]
