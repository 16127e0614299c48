"""Health endpoints for load balancers and orchestrators.

``GET /healthz`` answers 200 while the process serves HTTP at all (liveness). ``GET /readyz``
answers 200 only when the store answers, every registered migration is applied, and each started
listener accepts TCP connections (readiness); otherwise 503 with the failing checks. Both are
JSON without authentication and never carry patient data: only names, booleans and counts.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fhirmwl.ops import metrics

if TYPE_CHECKING:
    from fhirmwl.services.container import Services

_STARTED = time.time()


def _store_check(services: Services) -> dict[str, Any]:
    from fhirmwl.store.migrations import MIGRATIONS, current_version

    try:
        with services.store.read() as tx:
            applied = {int(r[0]) for r in tx.conn.execute("SELECT version FROM schema_migrations")}
    except Exception as exc:  # noqa: BLE001 - report, never raise, from a probe
        return {"ok": False, "error": type(exc).__name__}
    missing = sorted(m.version for m in MIGRATIONS if m.version not in applied)
    return {
        "ok": not missing,
        "schema_version": current_version(services.store.db),
        "missing_migrations": missing,
    }


def _accepting(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=1.0):
            return True
    except OSError:
        return False


def listener_checks(services: Services) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for listener in services.running:
        name = str(getattr(listener, "name", type(listener).__name__))
        port = getattr(listener, "port", None) or getattr(
            getattr(listener, "scp", None), "port", None
        )
        if isinstance(port, int) and port > 0:
            checks[name] = _accepting(services.settings.host, port)
        else:
            thread = getattr(listener, "thread", None)
            checks[name] = thread is None or bool(thread.is_alive())
    return checks


def readiness(services: Services) -> tuple[bool, dict[str, Any]]:
    store = _store_check(services)
    listeners = listener_checks(services)
    ready = services.started and bool(store["ok"]) and all(listeners.values())
    return ready, {
        "status": "ready" if ready else "not ready",
        "started": services.started,
        "store": store,
        "listeners": listeners,
    }


def routes(services: Services) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "uptime_seconds": round(time.time() - _STARTED, 1)})

    async def readyz(request: Request) -> Response:
        ready, body = await run_in_threadpool(readiness, services)
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics.render, services)
        return Response(body, media_type=content_type)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
