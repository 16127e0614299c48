"""Deliver order events from the durable outbox to HL7 v2 destinations over MLLP.

The same ``notify_event`` rows that feed the Subscriptions (written in the transaction of each
change) are read per destination behind a cursor. Each wanted event becomes a message that is
built once and stored in ``hl7_out_log`` (status ``pending``) in the transaction that advances
the cursor, so a kill -9 at any point loses nothing: on restart the pending message is sent
again with the same MSH-10 (at-least-once; receivers de-duplicate by control id). Messages of a
destination go strictly in event order, one at a time, so the messages of each order arrive in
order: a destination that is down or does not answer holds its queue and is retried with
back-off (0.25 s·2^n, at most 60 s); an ``AE``/``AR`` answer is logged and the message is retried
``max_attempts`` times, then marked ``rejected`` and skipped, never retried forever. One thread
per destination; a lease row keeps two processes on one PostgreSQL from sending the same queue.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from fhirmwl.hl7v2.message import parse_message
from fhirmwl.mllp.framing import Frame, FrameDecoder, frame
from fhirmwl.notify.topics import ORDER_CANCELLED, ORDER_CREATED, ORDER_UPDATED, STEP_STATUS
from fhirmwl.outbound.config import Destination
from fhirmwl.outbound.messages import CANCELLED, SCHEDULED, STATUS, UPDATED, build_message
from fhirmwl.outbound.view import order_view
from fhirmwl.services.orders.graph import load_order
from fhirmwl.store import Store, Tx
from fhirmwl.store.migrations import Migration

log = logging.getLogger("fhirmwl.outbound")
LEASE = 30.0
EVENT_FOR_TOPIC = {
    ORDER_CREATED: SCHEDULED,
    ORDER_UPDATED: UPDATED,
    ORDER_CANCELLED: CANCELLED,
    STEP_STATUS: STATUS,
}
PENDING, ACCEPTED, REJECTED, SKIPPED = "pending", "accepted", "rejected", "skipped"
STATUSES = (PENDING, ACCEPTED, REJECTED, SKIPPED)

OUTBOUND_MIGRATION = Migration(
    172,
    "outbound HL7 v2 delivery state and message log",
    (
        """CREATE TABLE hl7_out_dest (name TEXT PRIMARY KEY, cursor BIGINT NOT NULL,
            error_count INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
            lease_until DOUBLE PRECISION NOT NULL DEFAULT 0)""",
        """CREATE TABLE hl7_out_log (id {autoinc}, dest TEXT NOT NULL, event_no BIGINT NOT NULL,
            order_id TEXT NOT NULL, event TEXT NOT NULL, control_id TEXT NOT NULL,
            message_type TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, ack_code TEXT NOT NULL DEFAULT '',
            error TEXT, created TEXT NOT NULL, sent TEXT, message TEXT NOT NULL, ack TEXT,
            UNIQUE (dest, event_no))""",
        "CREATE INDEX ix_hl7_out_queue ON hl7_out_log (dest, status, event_no)",
        "CREATE INDEX ix_hl7_out_order ON hl7_out_log (order_id)",
    ),
)


def compose(
    tx: Tx,
    dest: Destination,
    event: str,
    order_id: str,
    control_id: str,
    focus: tuple[str, str, int] | None = None,
) -> str:
    """The message text for one event of one order: the order's current graph, with the
    event's focus resource (a Task, a ServiceRequest) as it was at the event's version, so a
    later change (MPPS COMPLETED right after IN PROGRESS) does not leak into an earlier
    message's ORC-5."""
    graph = load_order(tx, order_id)
    then: dict[tuple[str, str], dict[str, Any]] = {}
    if focus is not None:
        old = tx.vread(*focus)
        if old is not None and not old.deleted:
            then[(focus[0], focus[1])] = old.resource()

    def res(s: Any) -> dict[str, Any]:
        return then.get((s.res_type, s.res_id)) or s.resource()

    others = {f"{s.res_type}/{s.res_id}": s.resource() for s in graph.others}
    view = order_view(
        res(graph.isr),
        [res(s) for s in graph.rps],
        [res(s) for s in graph.tasks],
        [s.resource() for s in graph.studies],
        others,
    )
    stamp = tx.store.clock()[:19].replace("-", "").replace(":", "").replace("T", "") + "+0000"
    return build_message(view, event, dest.header, control_id, stamp)


def ensure_destinations(store: Store, destinations: list[Destination]) -> None:
    """A cursor row per destination; a new one starts after the events that exist already."""
    with store.write() as tx:
        last = tx.conn.execute("SELECT MAX(event_no) FROM notify_event").fetchone()[0] or 0
        for d in destinations:
            tx.conn.execute(
                "INSERT INTO hl7_out_dest (name, cursor) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (d.name, last),
            )


class Link:
    """One MLLP connection to a destination, opened on demand and dropped on any error."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.sock: socket.socket | None = None
        self.context = dest.tls_context()
        self.decoder = FrameDecoder(max_message_bytes=1 << 20)

    def exchange(self, message: bytes) -> bytes:
        try:
            if self.sock is None:
                sock = socket.create_connection(
                    (self.dest.host, self.dest.port), timeout=self.dest.timeout
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.context is not None:  # handshake now; a bad certificate is an OSError
                    try:
                        sock = self.context.wrap_socket(sock, server_hostname=self.dest.host)
                    except OSError:
                        sock.close()
                        raise
                self.sock = sock
                self.decoder = FrameDecoder(max_message_bytes=1 << 20)
            self.sock.sendall(frame(message))
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("connection closed before the ACK")
                frames = [e.payload for e in self.decoder.feed(data) if isinstance(e, Frame)]
                if frames:
                    return frames[0]
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


def read_ack(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-3 or ERR text) of an ACK; ('', reason) when it is not one."""
    try:
        msg = parse_message(ack)
    except Exception as exc:  # noqa: BLE001 - any unparseable reply is "no ACK"
        return "", f"unparseable reply: {type(exc).__name__}"
    msa = msg.first("MSA")
    if msa is None:
        return "", "reply without MSA"
    err = msg.first("ERR")
    text = msa.raw(3) or (err.raw(8) or err.comp(3, 2) if err is not None else "")
    return msa.raw(1).upper(), text
