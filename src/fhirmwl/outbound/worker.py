"""The outbound HL7 v2 worker: one thread per destination (see ``outbound.sender``).

Each cycle claims the destination's lease, turns new outbox events into ``pending`` log rows
(``enqueue``), then sends the pending rows in event order until the queue is empty or the
destination fails (``drain``). A write hook wakes the threads right after a change to an order
commits; other processes' changes are seen by polling.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson

from fhirmwl.errors import FhirMwlError
from fhirmwl.notify.delivery import backoff
from fhirmwl.notify.outbox import sequence_pending
from fhirmwl.notify.topics import matches
from fhirmwl.outbound.config import Destination
from fhirmwl.outbound.sender import (
    ACCEPTED,
    EVENT_FOR_TOPIC,
    LEASE,
    PENDING,
    REJECTED,
    SKIPPED,
    Link,
    compose,
    read_ack,
)
from fhirmwl.store import Store, Tx

log = logging.getLogger("fhirmwl.outbound")


class WakeHook:
    """WriteHook: wake the senders after a change to an order commits."""

    def __init__(self) -> None:
        self.events: list[threading.Event] = []

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        if any(t in ("ServiceRequest", "Task") for t, _ in touched):
            tx.after_commit.append(self.wake)

    def wake(self) -> None:
        for event in self.events:
            event.set()


class DestinationWorker:
    def __init__(self, store: Store, dest: Destination, poll: float, stopping: threading.Event):
        self.store, self.dest, self.poll, self.stopping = store, dest, poll, stopping
        self.wake = threading.Event()
        self.link = Link(dest)
        self.thread = threading.Thread(target=self.loop, name=f"hl7-out-{dest.name}", daemon=True)

    def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.cycle()
            except Exception:  # noqa: BLE001 - a worker must survive a bad cycle
                log.exception("outbound HL7 to %s: cycle failed", self.dest.name)
            self.wake.wait(self.poll)
            self.wake.clear()
        self.link.close()

    def cycle(self) -> None:
        if not self._lease(time.time() + LEASE):
            return
        try:
            self.enqueue()
            self.drain()
        finally:
            self._lease(0.0, release=True)

    def _lease(self, until: float, release: bool = False) -> bool:
        now = time.time()
        with self.store.write() as tx:
            if release:
                sql = "UPDATE hl7_out_dest SET lease_until = 0 WHERE name = ?"
                tx.conn.execute(sql, (self.dest.name,))
                return True
            cur = tx.conn.execute(
                "UPDATE hl7_out_dest SET lease_until = ? WHERE name = ? AND lease_until <= ?",
                (until, self.dest.name, now),
            )
            return bool(cur.rowcount == 1)

    def _renew(self) -> None:
        """Extend the lease held by this worker (a long queue takes longer than one lease)."""
        with self.store.write() as tx:
            tx.conn.execute(
                "UPDATE hl7_out_dest SET lease_until = ? WHERE name = ?",
                (time.time() + LEASE, self.dest.name),
            )

    def enqueue(self) -> None:
        """New outbox events → pending messages (built now), cursor advanced in the same tx."""
        sequence_pending(self.store)  # PostgreSQL: events a killed writer left unnumbered
        while not self.stopping.is_set():
            with self.store.write() as tx:
                cursor = tx.conn.execute(
                    "SELECT cursor FROM hl7_out_dest WHERE name = ?", (self.dest.name,)
                ).fetchone()[0]
                rows = tx.conn.execute(
                    "SELECT event_no, topic, order_id, context, focus_type, focus_id, "
                    "focus_version FROM notify_event "
                    "WHERE event_no > ? ORDER BY event_no LIMIT 100",
                    (cursor,),
                ).fetchall()
                if not rows:
                    return
                for event_no, topic, order_id, context, f_type, f_id, f_version in rows:
                    event = EVENT_FOR_TOPIC.get(str(topic))
                    wanted = not self.dest.filters or matches(
                        list(self.dest.filters), orjson.loads(context)
                    )
                    if event in self.dest.events and wanted:
                        focus = (str(f_type), str(f_id), int(f_version))
                        self._add(tx, int(event_no), str(event), str(order_id), focus)
                tx.conn.execute(
                    "UPDATE hl7_out_dest SET cursor = ? WHERE name = ?",
                    (rows[-1][0], self.dest.name),
                )

    def _add(
        self,
        tx: Tx,
        event_no: int,
        event: str,
        order_id: str,
        focus: tuple[str, str, int] | None = None,
    ) -> None:
        control_id = f"{event_no:010d}"
        status, error, text = PENDING, None, ""
        try:
            text = compose(tx, self.dest, event, order_id, control_id, focus)
        except FhirMwlError as exc:  # the order is gone: nothing to send, say so
            status, error = SKIPPED, exc.message
        except Exception as exc:  # noqa: BLE001 - one unbuildable event must not block the queue
            log.exception("HL7 %s to %s cannot be built", control_id, self.dest.name)
            status, error = SKIPPED, f"cannot build the message: {type(exc).__name__}"
        tx.conn.execute(
            "INSERT INTO hl7_out_log (dest, event_no, order_id, event, control_id, message_type,"
            " status, error, created, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (dest, event_no) DO NOTHING",
            (
                self.dest.name,
                event_no,
                order_id,
                event,
                control_id,
                self.dest.header.message_type,
                status,
                error,
                tx.store.clock(),
                text,
            ),
        )

    def drain(self) -> None:
        while not self.stopping.is_set():
            with self.store.read() as tx:
                state = tx.conn.execute(
                    "SELECT next_attempt FROM hl7_out_dest WHERE name = ?", (self.dest.name,)
                ).fetchone()
                row = tx.conn.execute(
                    "SELECT id, message, attempts, control_id FROM hl7_out_log "
                    "WHERE dest = ? AND status = ? ORDER BY event_no LIMIT 1",
                    (self.dest.name, PENDING),
                ).fetchone()
            if row is None or state[0] > time.time():
                return
            self._renew()
            if not self.send(int(row[0]), str(row[1]), int(row[2]), str(row[3])):
                return

    def send(self, log_id: int, message: str, attempts: int, control_id: str) -> bool:
        """One attempt; True when the queue may go on (accepted or finally rejected)."""
        try:
            ack = self.link.exchange(message.encode("utf-8"))
            code, text = read_ack(ack)
        except OSError as exc:
            return self._failed(log_id, attempts, f"{type(exc).__name__}: {exc}", None, "")
        if code in ("AA", "CA"):
            self._record(log_id, ACCEPTED, attempts + 1, code, None, ack)
            log.info("HL7 %s to %s accepted", control_id, self.dest.name)
            return True
        if code in ("AE", "AR", "CE", "CR"):
            final = attempts + 1 >= self.dest.max_attempts
            log.warning("HL7 %s to %s answered %s: %s", control_id, self.dest.name, code, text)
            if final:
                self._record(log_id, REJECTED, attempts + 1, code, text, ack)
                return True
            return self._failed(log_id, attempts, f"{code}: {text}", ack, code)
        return self._failed(log_id, attempts, text or "no ACK", ack, code)

    def _record(
        self, log_id: int, status: str, attempts: int, code: str, error: str | None, ack: bytes
    ) -> None:
        with self.store.write() as tx:
            tx.conn.execute(
                "UPDATE hl7_out_log SET status = ?, attempts = ?, ack_code = ?, error = ?, "
                "sent = ?, ack = ? WHERE id = ?",
                (status, attempts, code, error, tx.store.clock(), _text(ack), log_id),
            )
            tx.conn.execute(
                "UPDATE hl7_out_dest SET error_count = 0, last_error = NULL, next_attempt = 0 "
                "WHERE name = ?",
                (self.dest.name,),
            )

    def _failed(self, log_id: int, attempts: int, error: str, ack: bytes | None, code: str) -> bool:
        with self.store.write() as tx:
            errors = tx.conn.execute(
                "SELECT error_count FROM hl7_out_dest WHERE name = ?", (self.dest.name,)
            ).fetchone()[0]
            tx.conn.execute(
                "UPDATE hl7_out_log SET attempts = ?, ack_code = ?, error = ?, ack = ? "
                "WHERE id = ?",
                (attempts + 1, code, error, _text(ack) if ack else None, log_id),
            )
            tx.conn.execute(
                "UPDATE hl7_out_dest SET error_count = ?, last_error = ?, next_attempt = ? "
                "WHERE name = ?",
                (errors + 1, error, time.time() + backoff(errors + 1), self.dest.name),
            )
        log.warning("HL7 to %s failed (%d): %s", self.dest.name, errors + 1, error)
        return False


def _text(ack: bytes) -> str:
    return ack.decode("utf-8", errors="replace")


class Hl7Outbound:
    """The listener ``fhirmwl serve`` starts when ``[[hl7_destinations]]`` are configured."""

    name = "hl7_outbound"

    def __init__(
        self, store: Store, destinations: list[Destination], hook: WakeHook, poll: float = 0.5
    ) -> None:
        self.stopping = threading.Event()
        self.workers = [DestinationWorker(store, d, poll, self.stopping) for d in destinations]
        self.hook = hook
        hook.events[:] = [w.wake for w in self.workers]

    def start(self) -> None:
        for w in self.workers:
            w.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.hook.wake()
        for w in self.workers:
            w.thread.join(timeout=15)
