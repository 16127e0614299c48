"""The v2 message log: every received message, its outcome and its ACK.

Every received message is kept with its raw bytes, sender, MSH-10, type, outcome, ACK bytes and
the ids of the resources it touched, so that an integration engineer can see what happened to
each message (`fhirmwl v2 log`) and re-play it (`fhirmwl v2 replay ID`). An applied message's
row is written in the same transaction as its FHIR changes; its ``dedupe_key`` (sender + MSH-10)
is unique, so a retransmission is recognised even when the twin arrives on another connection
at the same moment. The table ``v2_order_state`` (per-order MSH-7, migration 30) is superseded by
``services.orders.clock`` and only read there as a fallback.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fhirmwl.store.db import Conn
from fhirmwl.store.migrations import MIGRATIONS, Migration, migrate, register

_LOG_COLS = (
    "received_at TEXT NOT NULL, peer TEXT NOT NULL, sending_application TEXT NOT NULL, "
    "sending_facility TEXT NOT NULL, control_id TEXT NOT NULL, message_type TEXT NOT NULL, "
    "status TEXT NOT NULL, ack_code TEXT NOT NULL, error TEXT, touched TEXT NOT NULL, "
    "dedupe_key TEXT UNIQUE"
)
MIGRATION = Migration(
    30,
    "HL7 v2 message log and per-order message clock",
    (
        f"sqlite: CREATE TABLE v2_message_log (id {{autoinc}}, {_LOG_COLS}, raw BLOB NOT NULL, "
        "ack BLOB NOT NULL)",
        f"postgresql: CREATE TABLE v2_message_log (id {{autoinc}}, {_LOG_COLS}, "
        "raw BYTEA NOT NULL, ack BYTEA NOT NULL)",
        "CREATE INDEX ix_v2_log_status ON v2_message_log (status, id)",
        "CREATE INDEX ix_v2_log_control ON v2_message_log (control_id)",
        """CREATE TABLE v2_order_state (isr_id TEXT PRIMARY KEY, msg_time TEXT NOT NULL,
            control_id TEXT NOT NULL)""",
    ),
)

# Outcomes written to v2_message_log.status
APPLIED = "applied"  # committed with the FHIR changes (AA)
REFUSED = "refused"  # AE for the content or the order state; nothing applied
REJECTED = "rejected"  # AR/AE before the store was touched (unparseable, unsupported, missing)
FAILED = "failed"  # store failure (AE 207); nothing applied, may be re-played
DUPLICATE = "duplicate"  # retransmission: the stored ACK was sent again
STATUSES = (APPLIED, REFUSED, REJECTED, FAILED, DUPLICATE)


def register_migrations() -> None:
    if not any(m.version == MIGRATION.version for m in MIGRATIONS):
        register(MIGRATION)


def ensure_schema(db: Any) -> None:
    register_migrations()
    migrate(db)


@dataclass
class LogRecord:
    received_at: str
    peer: str
    sending_application: str
    sending_facility: str
    control_id: str
    message_type: str
    status: str
    ack_code: str
    raw: bytes
    ack: bytes
    touched: list[str]
    error: str | None = None
    dedupe_key: str | None = None
    id: int | None = None


def content_digest(raw: bytes) -> str:
    """Digest of everything after the MSH segment: a resend that re-stamps MSH-7 is the same."""
    body = raw.replace(b"\n", b"\r").split(b"\r", 1)
    return hashlib.sha256(body[1] if len(body) > 1 else b"").hexdigest()[:32]


def dedupe_key(
    sending_application: str,
    sending_facility: str,
    control_id: str,
    message_type: str,
    raw: bytes = b"",
) -> str:
    """MSH-3, MSH-4, MSH-10, MSH-9 and the content digest: a retransmission is the same
    message; the same control id with other content is a new message."""
    return json.dumps(
        [sending_application, sending_facility, control_id, message_type, content_digest(raw)]
    )


def insert(conn: Conn, rec: LogRecord) -> None:
    conn.execute(
        "INSERT INTO v2_message_log (received_at, peer, sending_application, sending_facility, "
        "control_id, message_type, status, ack_code, error, touched, dedupe_key, raw, ack) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.received_at, rec.peer, rec.sending_application, rec.sending_facility,
            rec.control_id, rec.message_type, rec.status, rec.ack_code, rec.error,
            json.dumps(rec.touched), rec.dedupe_key, rec.raw, rec.ack,
        ),
    )  # fmt: skip


def earlier(conn: Conn, key: str, rec: LogRecord) -> tuple[bytes | None, int | None]:
    """One look-up on MSH-10: the stored ACK of this very message (same ``key``), else the log
    id of an applied message from the same sender with the same MSH-10/MSH-9 (other content)."""
    rows = conn.execute(
        "SELECT id, dedupe_key, ack FROM v2_message_log WHERE control_id = ? AND "
        "sending_application = ? AND sending_facility = ? AND message_type = ? AND status = ? "
        "ORDER BY id DESC",
        (rec.control_id, rec.sending_application, rec.sending_facility, rec.message_type, APPLIED),
    ).fetchall()
    for row in rows:
        if row[1] == key:
            return bytes(row[2]), None
    return None, (int(rows[0][0]) if rows else None)


_SELECT = (
    "SELECT id, received_at, peer, sending_application, sending_facility, control_id, "
    "message_type, status, ack_code, error, touched, dedupe_key, raw, ack FROM v2_message_log"
)


def _record(row: Any) -> LogRecord:
    return LogRecord(
        row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], bytes(row[12]),
        bytes(row[13]), json.loads(row[10]), row[9], row[11], int(row[0]),
    )  # fmt: skip


def recent(conn: Conn, limit: int = 50, status: str | None = None) -> list[LogRecord]:
    """Newest first."""
    where, args = ("", [])
    if status:
        where, args = " WHERE status = ?", [status]
    rows = conn.execute(f"{_SELECT}{where} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [_record(r) for r in rows]


def get(conn: Conn, log_id: int) -> LogRecord | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (log_id,)).fetchone()
    return _record(row) if row else None
