"""The background worker that delivers notifications from the outbox to rest-hook endpoints.

Per subscription, events are assigned consecutive event numbers (in a DB transaction) and then
delivered strictly in that order, several events per notification Bundle (R5 allows a list of
``notificationEvent``; at most ``max_events``), so a stream of orders costs one POST and one
bookkeeping write per batch instead of per event. A delivery counts only once the endpoint
answered 2xx, so a kill -9 at any point leads to a re-delivery with the same event numbers
(at-least-once; receivers de-duplicate by number). The outbox hook wakes the worker right after
the writing transaction commits (same process); other processes are seen by polling. A failing
endpoint backs off exponentially and only its own subscription waits: each subscription is
worked in its own pool thread. Each cycle first numbers events left pending on PostgreSQL
(``outbox.sequence_pending``). A lease column keeps two processes on one PostgreSQL database
from delivering the same subscription at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from fhirmwl.notify.delivery import (
    Numbered,
    backoff,
    filters_of,
    headers_of,
    notification_bundle,
)
from fhirmwl.notify.outbox import OutboxHook, sequence_pending
from fhirmwl.notify.topics import matches
from fhirmwl.store import Store, Tx

log = logging.getLogger("fhirmwl.notify")
LEASE = 30.0


class Dispatcher:
    name = "notify"

    def __init__(
        self,
        store: Store,
        hook: OutboxHook,
        base: str,
        poll: float = 0.5,
        timeout: float = 5.0,
        max_events: int = 50,
        endpoint_check: Callable[[str], str | None] | None = None,
    ) -> None:
        self.store, self.hook, self.base, self.poll = store, hook, base, poll
        self.endpoint_check = endpoint_check  # security.endpoints: re-checked before each POST
        self.max_events = max(1, max_events)
        self.client = httpx.Client(timeout=timeout)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="notify")
        self.busy: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="notify", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.hook.wake.set()
        self.thread.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.hook.wake.wait(self.poll)
            self.hook.wake.clear()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a worker must survive a bad cycle
                log.exception("notification cycle failed")

    def tick(self) -> None:
        # PostgreSQL: number what writers left pending (a writer numbers its own events after
        # commit; one killed in between leaves them to this poll), before reading the outbox.
        sequence_pending(self.store)
        now = time.time()
        with self.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT sub_id FROM notify_sub WHERE next_attempt <= ? AND lease_until <= ?",
                (now, now),
            ).fetchall()
        for (sub_id,) in rows:
            with self.lock:
                if sub_id in self.busy:
                    continue
                self.busy.add(sub_id)
            self.pool.submit(self._work, sub_id)

    def _work(self, sub_id: str) -> None:
        try:
            if self._claim(sub_id):
                try:
                    self.process(sub_id)
                finally:
                    self._release(sub_id)
        except Exception:  # noqa: BLE001
            log.exception("delivery to Subscription/%s failed", sub_id)
        finally:
            with self.lock:
                self.busy.discard(sub_id)
            if not self.stopping.is_set():
                self.hook.wake.set()  # pick up events that arrived meanwhile

    def _claim(self, sub_id: str) -> bool:
        now = time.time()
        with self.store.write() as tx:
            cur = tx.conn.execute(
                "UPDATE notify_sub SET lease_until = ? WHERE sub_id = ? AND lease_until <= ?",
                (now + LEASE, sub_id, now),
            )
            return bool(cur.rowcount == 1)

    def _release(self, sub_id: str) -> None:
        with self.store.write() as tx:
            tx.conn.execute("UPDATE notify_sub SET lease_until = 0 WHERE sub_id = ?", (sub_id,))

    # ---- one subscription ---------------------------------------------------------------
    def process(self, sub_id: str) -> None:
        with self.store.read() as tx:
            stored = tx.read("Subscription", sub_id)
            state = tx.conn.execute(
                "SELECT handshake, last_sent, error_count FROM notify_sub WHERE sub_id = ?",
                (sub_id,),
            ).fetchone()
        if stored is None or stored.deleted or state is None:
            return
        sub = stored.resource()
        if sub.get("status") == "off" or (sub.get("channelType") or {}).get("code") != "rest-hook":
            return
        if not state[0] and not self._send(sub, "handshake", [], mark_handshake=True):
            return
        while not self.stopping.is_set():
            self._assign(sub)  # events committed meanwhile join the next batch
            batch = self._pending(sub_id)
            if not batch or not self._send(sub, "event-notification", batch):
                break
        period = sub.get("heartbeatPeriod")
        if isinstance(period, int) and period > 0 and time.time() - state[1] >= period:
            self._send(sub, "heartbeat", [])

    def _assign(self, sub: dict[str, Any]) -> None:
        """Give the subscription's matching new events their consecutive event numbers."""
        filters = filters_of(sub)
        with self.store.read() as tx:  # cheap check first: no write lock when nothing is new
            row = tx.conn.execute(
                "SELECT cursor, (SELECT MAX(event_no) FROM notify_event) FROM notify_sub "
                "WHERE sub_id = ?",
                (sub["id"],),
            ).fetchone()
        if row is None or row[1] is None or row[1] <= row[0]:
            return
        with self.store.write() as tx:
            cursor, count = tx.conn.execute(
                "SELECT cursor, events_count FROM notify_sub WHERE sub_id = ?", (sub["id"],)
            ).fetchone()
            rows = tx.conn.execute(
                "SELECT event_no, topic, context FROM notify_event WHERE event_no > ? "
                "ORDER BY event_no LIMIT 500",
                (cursor,),
            ).fetchall()
            if not rows:
                return
            new = []
            for event_no, topic, context in rows:
                if topic == sub.get("topic") and matches(filters, orjson.loads(context)):
                    count += 1
                    new.append((sub["id"], count, event_no))
            tx.conn.executemany(
                "INSERT INTO notify_delivery (sub_id, event_number, event_no) VALUES (?, ?, ?)", new
            )
            tx.conn.execute(
                "UPDATE notify_sub SET cursor = ?, events_count = ? WHERE sub_id = ?",
                (rows[-1][0], count, sub["id"]),
            )

    def _pending(self, sub_id: str) -> list[Numbered]:
        with self.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT d.event_number, e.created, e.focus_type, e.focus_id, e.focus_version "
                "FROM notify_delivery d JOIN notify_event e ON e.event_no = d.event_no "
                "WHERE d.sub_id = ? AND d.delivered = 0 ORDER BY d.event_number LIMIT ?",
                (sub_id, self.max_events),
            ).fetchall()
            return [
                Numbered(r[0], r[1], r[2], r[3], focus_resource(tx, r[2], r[3], r[4])) for r in rows
            ]

    def _send(
        self,
        sub: dict[str, Any],
        kind: str,
        events: list[Numbered],
        mark_handshake: bool = False,
    ) -> bool:
        number = events[-1].number if events else None  # the last event number sent
        if number is not None:
            since_start = number
        else:
            with self.store.read() as tx:
                since = tx.conn.execute(
                    "SELECT events_count FROM notify_sub WHERE sub_id = ?", (sub["id"],)
                ).fetchone()
            since_start = since[0] if since else 0
        bundle = notification_bundle(sub, kind, since_start, events, self.base, self.store.clock())
        endpoint = str(sub.get("endpoint"))
        refused = self.endpoint_check(endpoint) if self.endpoint_check else None
        error: str | None
        if refused:
            ok, error = False, f"endpoint refused: {refused}"
        else:
            try:
                response = self.client.post(
                    endpoint, content=orjson.dumps(bundle), headers=headers_of(sub)
                )
                ok = 200 <= response.status_code < 300
                error = None if ok else f"endpoint answered HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
        self._record(sub, ok, error, number, mark_handshake)
        return ok

    def _record(
        self,
        sub: dict[str, Any],
        ok: bool,
        error: str | None,
        number: int | None,
        mark_handshake: bool,
    ) -> None:
        now = time.time()
        with self.store.write() as tx:
            if ok:
                tx.conn.execute(
                    "UPDATE notify_sub SET error_count = 0, last_error = NULL, next_attempt = 0, "
                    f"last_sent = ?{', handshake = 1' if mark_handshake else ''} WHERE sub_id = ?",
                    (now, sub["id"]),
                )
                if number is not None:
                    tx.conn.execute(
                        "UPDATE notify_delivery SET delivered = 1, attempts = attempts + 1 "
                        "WHERE sub_id = ? AND event_number <= ? AND delivered = 0",
                        (sub["id"], number),
                    )
                _set_status(tx, sub["id"], "active")
                return
            errors = (
                tx.conn.execute(
                    "SELECT error_count FROM notify_sub WHERE sub_id = ?", (sub["id"],)
                ).fetchone()[0]
                + 1
            )
            tx.conn.execute(
                "UPDATE notify_sub SET error_count = ?, last_error = ?, next_attempt = ? "
                "WHERE sub_id = ?",
                (errors, error, now + backoff(errors), sub["id"]),
            )
            if number is not None:
                tx.conn.execute(
                    "UPDATE notify_delivery SET attempts = attempts + 1 "
                    "WHERE sub_id = ? AND event_number <= ? AND delivered = 0",
                    (sub["id"], number),
                )
            _set_status(tx, sub["id"], "error")
        log.warning("Subscription/%s delivery failed (%d): %s", sub["id"], errors, error)


def focus_resource(tx: Tx, rtype: str, rid: str, version: int) -> dict[str, Any] | None:
    stored = tx.vread(rtype, rid, version) if version else tx.read(rtype, rid)
    return stored.resource() if stored and stored.content else None


def _set_status(tx: Tx, sub_id: str, status: str) -> None:
    stored = tx.read("Subscription", sub_id, for_update=True)
    if stored is None or stored.content is None:
        return
    res = stored.resource()
    if res.get("status") != status and res.get("status") != "off":
        tx.update("Subscription", sub_id, dict(res, status=status))
