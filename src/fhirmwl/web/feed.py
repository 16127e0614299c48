"""Live updates for the desk: a change cursor polled from the shared store, pushed as SSE.

The cursor combines the newest notification outbox event (``notify_event``; every new, changed
or cancelled order and step writes one in its own transaction, and on PostgreSQL the outbox
makes event numbers visible in order) with the newest ``lu`` of the resources that change a
worklist item without touching an order (Patient, Encounter, Device, ImagingStudy: an ADT
rename). Both are single index lookups. One thread per process polls them, and only while a
browser listens; the cursor lives in the database, not in process memory, so a change
committed by any ``serve`` process on the same PostgreSQL reaches every desk. Browsers get an
``event: change`` and re-fetch the part of the page they show.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from fhirmwl.store import Store

log = logging.getLogger("fhirmwl.web")
_GRAPH_TYPES = ("Patient", "Encounter", "Device", "ImagingStudy")
_CURSOR_SQL = "SELECT (SELECT MAX(event_no) FROM notify_event), " + ", ".join(
    "(SELECT MAX(lu) FROM resource WHERE res_type = ?)" for _ in _GRAPH_TYPES
)
KEEP_ALIVE = 15.0  # seconds between SSE comments on an idle stream
MAX_STREAMS = 200  # open event streams per process; more are answered 503 (browsers retry)


class ChangeFeed:
    """The store's change cursor, refreshed every ``poll`` seconds while anyone listens."""

    name = "web"

    def __init__(self, store: Store, poll: float = 0.5) -> None:
        self.store, self.poll = store, poll
        self.cursor = ""
        self.listeners = 0
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def read_cursor(self) -> str:
        with self.store.read() as tx:
            row = tx.conn.execute(_CURSOR_SQL, _GRAPH_TYPES).fetchone()
        return "|".join("" if v is None else str(v) for v in row)

    def refresh(self) -> str:
        self.cursor = self.read_cursor()
        return self.cursor

    # ---- listener interface (runtime starts and stops it; SSE streams end on stop) ---------
    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self.stopping.is_set():
                self._thread = threading.Thread(target=self._loop, name="web-feed", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if self.listeners > 0:
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
                    log.exception("desk change cursor could not be read")
                self._wake.wait(self.poll)
            else:
                self._wake.wait()
            self._wake.clear()

    def subscribe(self) -> None:
        with self._lock:
            self.listeners += 1
        self.start()
        self._wake.set()

    def unsubscribe(self) -> None:
        with self._lock:
            self.listeners -= 1


async def _stream(
    feed: ChangeFeed, request: Request, tick: float, until: float | None = None
) -> AsyncIterator[str]:
    """The event stream; ends at ``until`` (the login session's expiry, when there is one), so
    the browser reconnects and is then asked to log in again."""
    feed.subscribe()
    try:
        last = await run_in_threadpool(feed.refresh)
        yield f"retry: 1000\nevent: hello\ndata: {last}\n\n"
        idle = 0.0
        while not feed.stopping.is_set():
            await asyncio.sleep(tick)
            if await request.is_disconnected() or (until is not None and time.time() >= until):
                break
            if feed.cursor != last:
                last = feed.cursor
                idle = 0.0
                yield f"event: change\ndata: {last}\n\n"
            else:
                idle += tick
                if idle >= KEEP_ALIVE:
                    idle = 0.0
                    yield ": keep-alive\n\n"
    finally:
        feed.unsubscribe()


def events_endpoint(
    feed: ChangeFeed,
    tick: float = 0.2,
    until: Callable[[Request], float | None] = lambda request: None,
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /ui/events``: the Server-Sent Events stream of cursor changes (until ``until``)."""

    async def events(request: Request) -> Response:
        if feed.listeners >= MAX_STREAMS:
            return PlainTextResponse(
                f"too many open event streams (limit {MAX_STREAMS})",
                503,
                headers={"Retry-After": "5"},
            )
        return StreamingResponse(
            _stream(feed, request, tick, until(request)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return events
