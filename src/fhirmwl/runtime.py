"""Run the broker: one store and one service layer (built by ``fhirmwl.wiring``), several doors.

Listeners (HTTP now; MLLP and DICOM register themselves the same way) share a tiny interface:
``start()`` returns once the listener accepts connections, ``stop()`` returns once it is closed.
``Runtime`` starts them in order and stops them in reverse, on SIGINT/SIGTERM or on request.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from typing import Protocol

from fhirmwl import wiring
from fhirmwl.config import Settings
from fhirmwl.services.container import Services

log = logging.getLogger("fhirmwl")


class Listener(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class HttpListener:
    """uvicorn in a background thread, so that it stops like every other listener.

    uvicorn installs no signal handlers outside the main thread; the runtime owns SIGINT/SIGTERM.
    """

    name = "http"

    def __init__(self, services: Services) -> None:
        import uvicorn

        from fhirmwl.api.app import create_app
        from fhirmwl.security.http_limits import uvicorn_options

        settings = services.settings
        config = uvicorn.Config(
            create_app(services),
            host=settings.host,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=settings.shutdown_grace,
            **uvicorn_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("HTTP listener failed to start (port in use?)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True  # uvicorn stops accepting and finishes requests in hand
        self.thread.join(timeout=(self.server.config.timeout_graceful_shutdown or 10) + 5)


_FROZEN = False


def freeze_startup_heap() -> None:
    """Move everything alive now (modules, the FHIR and pydantic models, compiled profiles,
    caches: some 200 000 objects) out of the cyclic garbage collector's reach.

    Why: they live as long as the process, yet every full collection traversed them all again,
    about 80 ms of CPU every few hundred writes (a twentieth of a v2 message's CPU). Objects
    created later are collected as usual; only cyclic garbage that exists at this moment is
    never reclaimed, so the heap is collected first; and only the first call in a process
    freezes (a process that starts several runtimes, like the test suite, freezes once).
    """
    global _FROZEN
    if _FROZEN:
        return
    _FROZEN = True
    gc.collect()
    gc.freeze()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = wiring.build_services(settings)
        self.listeners: list[Listener] = []
        self._stop = threading.Event()

    def start(self) -> None:
        for name, factory in wiring.doors(self.services):
            if not getattr(self.settings, name, True):
                continue
            listener = factory(self.services)
            listener.start()
            self.listeners.append(listener)
            self.services.running.append(listener)
            log.info("%s listener started", name)
        freeze_startup_heap()
        self.services.started = True

    def stop(self) -> None:
        self.services.started = False  # readiness fails first, so balancers drain this process
        for listener in reversed(self.listeners):
            try:
                listener.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error while stopping %s", listener.name)
        self.listeners.clear()
        self.services.running.clear()
        self.services.close()

    def run_forever(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        try:
            self._stop.wait()
        finally:
            log.info("shutting down")
            self.stop()
