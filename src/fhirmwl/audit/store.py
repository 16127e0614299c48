"""The append-only audit table: AuditEvents as JSON plus the columns their search needs.

AuditEvents are not ordinary resources: nothing may update or delete them, and they are written
far more often than anything else (every read is audited). So they live in their own table,
written with one INSERT per event inside the unit of work they record, with no history, no
search-index rows and no write hooks; ``audit_ref`` holds the patient and entity references for
the ``patient``/``entity`` searches. The only deletion is retention by age.

Storage (issue 15): ``content`` is the AuditEvent JSON deflated with a preset dictionary
(``fhirmwl.audit.codec``; a ``BYTEA`` on PostgreSQL), and on SQLite ``audit_ref`` is one B-tree
clustered on its search key (WITHOUT ROWID) instead of a table plus an index holding the same
columns. Rows written before stay readable as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fhirmwl.audit.codec import pack_content, unpack_content_bytes
from fhirmwl.audit.events import AuditRecord, to_fhir
from fhirmwl.fhir.dates import date_range
from fhirmwl.store.db import Conn
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

MIGRATION = Migration(
    190,
    "audit trail (append-only AuditEvents) and its export cursor",
    (
        """CREATE TABLE audit_event (id {autoinc}, recorded TEXT NOT NULL, door TEXT NOT NULL,
            action TEXT NOT NULL, category TEXT NOT NULL, code TEXT NOT NULL,
            outcome TEXT NOT NULL, agent TEXT NOT NULL, source TEXT NOT NULL,
            content TEXT NOT NULL)""",
        "CREATE INDEX ix_audit_recorded ON audit_event (recorded)",
        "CREATE INDEX ix_audit_agent ON audit_event (agent, recorded)",
        """CREATE TABLE audit_ref (audit_id BIGINT NOT NULL, kind TEXT NOT NULL,
            ref TEXT NOT NULL)""",
        "CREATE INDEX ix_audit_ref ON audit_ref (kind, ref, audit_id)",
        """CREATE TABLE audit_export (destination TEXT PRIMARY KEY, cursor BIGINT NOT NULL,
            last_error TEXT, error_count INTEGER NOT NULL DEFAULT 0)""",
    ),
)

# The references of an event are found by (kind, ref) — the ``patient``/``entity`` searches —
# and, for retention, by the event's own references (read from its content), never by
# ``audit_id`` alone: so on SQLite the table itself is the (kind, ref, audit_id) B-tree.
COMPACT_MIGRATION = Migration(
    241,
    "audit: AuditEvent JSON deflated (BYTEA on PostgreSQL); SQLite audit_ref WITHOUT ROWID",
    (
        "postgresql: ALTER TABLE audit_event ALTER COLUMN content TYPE BYTEA "
        "USING convert_to(content, 'UTF8')",
        "sqlite: CREATE TABLE audit_ref_new (kind TEXT NOT NULL, ref TEXT NOT NULL, "
        "audit_id BIGINT NOT NULL, PRIMARY KEY (kind, ref, audit_id)) WITHOUT ROWID",
        "sqlite: INSERT OR IGNORE INTO audit_ref_new (kind, ref, audit_id) "
        "SELECT kind, ref, audit_id FROM audit_ref",
        "sqlite: DROP TABLE audit_ref",
        "sqlite: ALTER TABLE audit_ref_new RENAME TO audit_ref",
    ),
)

SEARCH_PARAMS: tuple[str, ...] = ("date", "patient", "agent", "entity", "code", "subtype")
SEARCH_PARAMS += ("action", "outcome", "source", "_id", "_count", "_sort", "_format")


def register_migration() -> None:
    for migration in (MIGRATION, COMPACT_MIGRATION):
        if not any(m.version == migration.version for m in MIGRATIONS):
            register(migration)


def insert(conn: Conn, records: Sequence[AuditRecord]) -> list[int]:
    """Append records; returns their ids (one INSERT … RETURNING each, refs batched)."""
    ids: list[int] = []
    refs: list[tuple[int, str, str]] = []
    for rec in records:
        content = pack_content(orjson.dumps(to_fhir(rec)).decode())
        row = conn.execute(
            "INSERT INTO audit_event (recorded, door, action, category, code, outcome, agent, "
            "source, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                rec.recorded,
                rec.door,
                rec.action,
                rec.category[1],
                rec.code[1],
                rec.outcome,
                rec.agent_id or "anonymous",
                rec.observer,
                content,
            ),
        ).fetchone()
        audit_id = int(row[0])
        ids.append(audit_id)
        # Each reference once: (kind, ref, audit_id) is the key of the SQLite table.
        refs += [(audit_id, "patient", f"Patient/{p}") for p in dict.fromkeys(rec.patients)]
        refs += [(audit_id, "entity", e) for e in dict.fromkeys(rec.entities)]
    conn.executemany("INSERT INTO audit_ref (audit_id, kind, ref) VALUES (?, ?, ?)", refs)
    return ids


def _event(row: Sequence[Any]) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(unpack_content_bytes(row[1]))
    event["id"] = str(row[0])
    event["meta"] = {"lastUpdated": event.get("recorded")}
    return event


def read(conn: Conn, event_id: str) -> dict[str, Any] | None:
    if not event_id.isdigit():
        return None
    row = conn.execute(
        "SELECT id, content FROM audit_event WHERE id = ?", (int(event_id),)
    ).fetchone()
    return _event(row) if row else None


_PREFIX_OPS = {"eq": None, "ge": ">=", "gt": ">", "le": "<=", "lt": "<", "sa": ">", "eb": "<"}


def _date_clause(value: str) -> tuple[str, list[Any]]:
    prefix = value[:2] if value[:2] in _PREFIX_OPS else "eq"
    raw = value[2:] if value[:2] in _PREFIX_OPS else value
    lo, hi = date_range(raw)  # ValueError on a malformed date
    lo_i, hi_i = lo[:23] + "Z", hi[:23] + "Z"
    if prefix == "eq":
        return "recorded >= ? AND recorded <= ?", [lo_i, hi_i]
    op = _PREFIX_OPS[prefix]
    bound = lo_i if op in (">=", "<") else hi_i
    return f"recorded {op} ?", [bound]


def _token_value(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else value


def search(conn: Conn, params: list[tuple[str, str]], limit: int) -> list[dict[str, Any]]:
    """Newest first. Raises ``KeyError`` for an unknown parameter, ``ValueError`` for a bad
    value."""
    where: list[str] = []
    args: list[Any] = []
    for name, value in params:
        if name in ("_count", "_format", "_sort"):
            continue
        if name not in SEARCH_PARAMS:
            raise KeyError(name)
        values = [v for v in value.split(",") if v]
        if not values:
            continue
        if name == "date":
            clause, extra = _date_clause(value)
            where.append(clause)
            args += extra
        elif name in ("patient", "entity"):
            refs = [v if "/" in v or name == "entity" else f"Patient/{v}" for v in values]
            where.append(
                "id IN (SELECT audit_id FROM audit_ref WHERE kind = ? AND ref IN "
                f"({', '.join('?' * len(refs))}))"
            )
            args += [name, *refs]
        else:
            column = {
                "agent": "agent",
                "code": "category",
                "subtype": "code",
                "action": "action",
                "outcome": "outcome",
                "source": "source",
                "_id": "id",
            }[name]
            tokens = [_token_value(v) for v in values]
            if name == "_id":
                tokens = [t for t in tokens if t.isdigit()] or ["-1"]
            if name == "code":  # a code matches the event type or the subtype
                marks = ", ".join("?" * len(tokens))
                where.append(f"(category IN ({marks}) OR code IN ({marks}))")
                args += tokens + tokens
                continue
            where.append(f"{column} IN ({', '.join('?' * len(tokens))})")
            args += [int(t) for t in tokens] if name == "_id" else tokens
    sql = "SELECT id, content FROM audit_event"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, (*args, limit)).fetchall()
    return [_event(r) for r in rows]


def event_refs(content: str | bytes | memoryview) -> list[str]:
    """The references an event's ``audit_ref`` rows hold: its entities' ``what``."""
    event = orjson.loads(unpack_content_bytes(content))
    refs = (e.get("what", {}).get("reference") for e in event.get("entity", []))
    return list(dict.fromkeys(r for r in refs if r))


def purge_before(conn: Conn, cutoff: str, limit: int, apply: bool) -> int:
    """Retention: events recorded before ``cutoff`` (an instant).

    Their ``audit_ref`` rows are deleted by key — (kind, ref, audit_id) with the references
    read from each event — since no index starts with ``audit_id`` (a delete by ``audit_id``
    would scan the whole table once per event)."""
    rows = conn.execute(
        "SELECT id, content FROM audit_event WHERE recorded < ? ORDER BY id LIMIT ?",
        (cutoff, limit),
    ).fetchall()
    if apply and rows:
        refs = [(ref, r[0]) for r in rows for ref in event_refs(r[1])]
        conn.executemany(
            "DELETE FROM audit_ref WHERE kind IN ('patient', 'entity') AND ref = ? "
            "AND audit_id = ?",
            refs,
        )
        conn.executemany("DELETE FROM audit_event WHERE id = ?", [(r[0],) for r in rows])
    return len(rows)
