"""Models of the messages, subscriptions and status pages (read-only queries on the store).

The message search reads the HL7 v2 message log of the v2 intake (``services.ingest_v2.log``):
date (a day on the worklist's wall clock), message type, control id and ACK code are SQL
conditions; the free text is matched on the decoded message (per MSH-18) of the newest
``TEXT_SCAN`` rows that pass them, because the raw bytes may be in any character set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.errors import BadRequest
from fhirmwl.hl7v2.charset import decode_message
from fhirmwl.notify.outbox import pending_count
from fhirmwl.services.ingest_v2 import log as v2log
from fhirmwl.store import Tx

TEXT_SCAN = 2000
LIMIT = 100


def message_text(raw: bytes) -> str:
    """A logged message or ACK as readable text, one segment per line."""
    return decode_message(raw).text.replace("\r\n", "\r").replace("\n", "\r").replace("\r", "\n")


@dataclass(frozen=True)
class MessageFilter:
    date: str = ""
    type: str = ""
    control: str = ""
    ack: str = ""
    status: str = ""
    text: str = ""
    before: str = ""  # log id: only older messages (paging)
    size: str = ""  # messages per page (default LIMIT)

    @property
    def limit(self) -> int:
        return min(int(self.size or LIMIT), 500)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> MessageFilter:
        values = {f.name: params.get(f.name, "").strip() for f in fields(cls)}
        for name in ("before", "size"):
            if values[name] and not (values[name].isdigit() and int(values[name]) > 0):
                raise BadRequest(f"{name} must be a positive whole number")
        if values["date"]:
            try:
                date.fromisoformat(values["date"])
            except ValueError:
                raise BadRequest(
                    f"date must look like 2026-12-01, got {values['date']!r}"
                ) from None
        if values["status"] and values["status"] not in v2log.STATUSES:
            raise BadRequest(f"status must be one of {', '.join(v2log.STATUSES)}")
        values["type"] = values["type"].upper()
        values["ack"] = values["ack"].upper()
        return cls(**values)

    def params(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def _day_bounds(day: str, tz: ZoneInfo) -> tuple[str, str]:
    start = datetime.combine(date.fromisoformat(day), time(), tz).astimezone(UTC)
    end = start + timedelta(days=1)
    return tuple(t.strftime("%Y-%m-%dT%H:%M:%S.000Z") for t in (start, end))  # type: ignore[return-value]


def search_messages(tx: Tx, flt: MessageFilter, tz: ZoneInfo) -> list[v2log.LogRecord]:
    """Matching log rows, newest first (one page: at most ``flt.limit``)."""
    where: list[str] = []
    args: list[Any] = []
    if flt.date:
        where.append("received_at >= ? AND received_at < ?")
        args += list(_day_bounds(flt.date, tz))
    if flt.type:
        where.append("message_type LIKE ?")
        args.append(flt.type.replace("%", "").replace("_", "") + "%")
    for column, value in (
        ("control_id", flt.control),
        ("ack_code", flt.ack),
        ("status", flt.status),
    ):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if flt.before:
        where.append("id < ?")
        args.append(int(flt.before))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    scan = TEXT_SCAN if flt.text else flt.limit
    rows = tx.conn.execute(
        f"SELECT id FROM v2_message_log{clause} ORDER BY id DESC LIMIT ?", (*args, scan)
    ).fetchall()
    out = []
    needle = flt.text.casefold()
    for (log_id,) in rows:
        rec = v2log.get(tx.conn, int(log_id))
        if rec is None:
            continue
        if needle and needle not in message_text(rec.raw).casefold():
            continue
        out.append(rec)
        if len(out) >= flt.limit:
            break
    return out


@dataclass
class SubscriptionRow:
    sub_id: str
    status: str
    topic: str
    endpoint: str
    filters: str
    cursor: int
    events_count: int
    error_count: int
    last_error: str
    last_sent: str
    next_attempt: str


def _when(epoch: float | None) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%m-%d %H:%M:%SZ")


def subscriptions(tx: Tx) -> tuple[list[SubscriptionRow], int]:
    """Every Subscription with its delivery state, and the outbox head (newest event number)."""
    head = tx.conn.execute("SELECT MAX(event_no) FROM notify_event").fetchone()[0] or 0
    states = {
        r[0]: r
        for r in tx.conn.execute(
            "SELECT sub_id, cursor, events_count, error_count, last_error, last_sent, "
            "next_attempt FROM notify_sub"
        ).fetchall()
    }
    ids = [
        r[0]
        for r in tx.conn.execute(
            "SELECT res_id FROM resource WHERE res_type = ? AND deleted = 0 ORDER BY lu DESC",
            ("Subscription",),
        ).fetchall()
    ]
    out = []
    for stored in tx.read_many([("Subscription", i) for i in ids]):
        sub = stored.resource()
        st = states.get(stored.res_id) or (stored.res_id, 0, 0, 0, None, 0, 0)
        filters = ", ".join(
            f"{f.get('filterParameter')}={f.get('value')}" for f in sub.get("filterBy") or []
        )
        out.append(
            SubscriptionRow(
                stored.res_id,
                str(sub.get("status") or ""),
                str(sub.get("topic") or "").rsplit("/", 1)[-1],
                str(sub.get("endpoint") or ""),
                filters,
                int(st[1]),
                int(st[2]),
                int(st[3]),
                str(st[4] or ""),
                _when(st[5]),
                _when(st[6]) if st[3] else "",
            )
        )
    return out, int(head)


@dataclass
class StatusView:
    listeners: list[tuple[str, str, str, str]]  # (name, state, address, badge class)
    counts: list[tuple[str, int]]
    messages_by_status: list[tuple[str, int]]
    last_errors: list[v2log.LogRecord]
    delivery_errors: list[tuple[str, str]]


def _count(tx: Tx, sql: str, args: tuple[Any, ...] = ()) -> int:
    return int(tx.conn.execute(sql, args).fetchone()[0] or 0)


def listeners(settings: Any, measured: dict[str, bool]) -> list[tuple[str, str, str, str]]:
    """Each network listener with what was measured just now (``ops.health``: a TCP connect to
    its port): ``accepting``, ``not accepting`` (configured but down, or not started in this
    process) or ``off`` (not configured)."""
    host = settings.host
    rows = [
        ("HTTP (FHIR API, desk)", "http", f"{host}:{settings.http_port}"),
        ("MLLP (HL7 v2)", "mllp", f"{host}:{settings.mllp_port}"),
        ("DICOM (C-FIND worklist)", "dicom", f"{settings.ae_title}@{host}:{settings.dicom_port}"),
    ]
    out = []
    for label, name, address in rows:
        if not getattr(settings, name):
            out.append((label, "off", address, "neutral"))
        elif measured.get(name):
            out.append((label, "accepting", address, "on"))
        else:
            out.append((label, "not accepting", address, "off"))
    return out


def status_view(tx: Tx, settings: Any, measured: dict[str, bool]) -> StatusView:
    resources = [
        (
            f"{rtype} resources",
            _count(
                tx, "SELECT COUNT(*) FROM resource WHERE res_type = ? AND deleted = 0", (rtype,)
            ),
        )
        for rtype in ("ServiceRequest", "Task", "Patient", "Subscription")
    ]
    counts = [
        ("worklist items", _count(tx, "SELECT COUNT(*) FROM worklist")),
        *resources,
        ("outbox events", _count(tx, "SELECT COUNT(*) FROM notify_event")),
        ("outbox events not numbered yet", pending_count(tx)),
        ("HL7 messages logged", _count(tx, "SELECT COUNT(*) FROM v2_message_log")),
    ]
    by_status = [
        (str(r[0]), int(r[1]))
        for r in tx.conn.execute(
            "SELECT status, COUNT(*) FROM v2_message_log GROUP BY status ORDER BY status"
        ).fetchall()
    ]
    errors = [
        rec
        for (log_id,) in tx.conn.execute(
            "SELECT id FROM v2_message_log WHERE status IN (?, ?, ?) ORDER BY id DESC LIMIT 10",
            (v2log.REFUSED, v2log.REJECTED, v2log.FAILED),
        ).fetchall()
        if (rec := v2log.get(tx.conn, int(log_id)))
    ]
    delivery = [
        (str(r[0]), str(r[1]))
        for r in tx.conn.execute(
            "SELECT sub_id, last_error FROM notify_sub WHERE error_count > 0 ORDER BY sub_id"
        ).fetchall()
    ]
    return StatusView(listeners(settings, measured), counts, by_status, errors, delivery)
