"""Run the asyncio MLLP listener in its own thread, behind the runtime's sync Listener interface.

`fhirmwl.runtime` starts every listener with a blocking ``start()`` and stops it with
``stop()``; the HTTP listener runs uvicorn in a thread the same way. The service layer and the
store are synchronous (sqlite3, pynetdicom threads), so `sync_handler` runs a plain
``(payload, peer) -> ack`` function on a small thread pool: the event loop keeps reading and
writing frames for every connection while a message is being committed.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ssl import SSLContext

from fhirmwl.mllp.server import Handler, MLLPServer, PeerInfo

SyncHandler = Callable[[bytes, PeerInfo], bytes]


def sync_handler(fn: SyncHandler, workers: int = 4) -> tuple[Handler, ThreadPoolExecutor]:
    """Wrap a blocking handler; the caller shuts the returned executor down after stop()."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp-work")

    async def handler(payload: bytes, peer: PeerInfo) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, payload, peer)

    return handler, pool


class ThreadedMLLPListener:
    """`start()` returns once the port accepts connections; `stop()` once it is closed."""

    name = "mllp"

    def __init__(
        self,
        handler: Handler | SyncHandler,
        host: str = "0.0.0.0",
        port: int = 2575,
        *,
        max_message_bytes: int = 1 << 20,
        idle_timeout: float = 300.0,
        max_garbage_bytes: int = 4096,
        workers: int = 4,
        shutdown_grace: float = 10.0,
        ssl: SSLContext | None = None,
        max_connections: int = 0,
        max_per_peer: int = 0,
    ) -> None:
        self._pool: ThreadPoolExecutor | None = None
        if not inspect.iscoroutinefunction(handler):
            handler, self._pool = sync_handler(handler, workers)  # type: ignore[arg-type]
        self.server = MLLPServer(
            handler,  # type: ignore[arg-type]
            host,
            port,
            max_message_bytes=max_message_bytes,
            idle_timeout=idle_timeout,
            max_garbage_bytes=max_garbage_bytes,
            shutdown_grace=shutdown_grace,
            ssl=ssl,
            max_connections=max_connections,
            max_per_peer=max_per_peer,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mllp", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(15)

    def stop(self) -> None:
        if self._thread.is_alive():
            wait = self.server.shutdown_grace + 15
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(wait)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
