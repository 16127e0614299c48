"""Identifiers the broker assigns: Accession Number, Requested Procedure ID, SPS ID.

On SQLite the accession number comes from a counter row (``order_counter``) incremented inside
the order's own transaction (the database write lock serialises writers anyway, and a rolled
back order gives its number back). On PostgreSQL it comes from a sequence
(``order_accession_seq``, migration 231): a counter row's lock would be held until the order's
COMMIT, so every concurrent ``$create-order`` (also in other processes) waited for the previous
one to commit. ``nextval`` takes no lock that lasts; the price is that a rolled back order leaves
a gap in the numbers. Migration 231 starts the sequence after the counter row's value; to move
it by hand, ``SELECT setval('order_accession_seq', n)``. A value that already exists (imported
by hand, counter reset) is skipped, never reused.
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

SEQUENCE_MIGRATION = Migration(
    231,
    "PostgreSQL: accession numbers from a sequence (no counter row lock held until commit)",
    (
        "postgresql: CREATE SEQUENCE order_accession_seq",
        "postgresql: SELECT setval('order_accession_seq', value) FROM order_counter "
        "WHERE name = 'accession' AND value > 0",
    ),
)
# PostgreSQL: counters backed by a sequence instead of an ``order_counter`` row.
_SEQUENCES = {"accession": "order_accession_seq"}
_INCREMENT = "UPDATE order_counter SET value = value + 1 WHERE name = ? RETURNING value"


def register_migrations() -> None:
    from fhirmwl.store.migrations import MIGRATIONS

    for migration in (COUNTER_MIGRATION, SEQUENCE_MIGRATION):
        if not any(m.version == migration.version for m in MIGRATIONS):
            register(migration)


def next_counter(tx: Tx, name: str) -> int:
    """The next value of the named counter: a sequence on PostgreSQL (no lock that lasts until
    commit), else the counter row incremented within ``tx`` (one statement when it exists)."""
    sequence = _SEQUENCES.get(name)
    if sequence and tx.dialect == "postgresql":
        return int(tx.conn.execute(f"SELECT nextval('{sequence}')").fetchone()[0])
    row = tx.conn.execute(_INCREMENT, (name,)).fetchone()
    if row is None:
        tx.conn.execute(
            "INSERT INTO order_counter (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )
        row = tx.conn.execute(_INCREMENT, (name,)).fetchone()
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
