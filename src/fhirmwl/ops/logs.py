"""Structured logs and request ids.

``--log-format json`` writes one JSON object per line (time, level, logger, message and the
context of the current unit of work: door, peer, request id / control id / association id).
The context travels in ``contextvars`` so each door sets it once at its edge and every log line
below it carries it, including lines from threads started with ``contextvars.copy_context``.
HTTP requests get an ``X-Request-ID`` (the client's when it sends a sane one, else a new one),
echoed in the response. Patient data is never put into the context.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "fhirmwl_log_context", default=None
)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def bind(**fields: str) -> contextvars.Token[dict[str, str] | None]:
    """Add fields to the log context of the current unit of work; returns a reset token."""
    merged = dict(CONTEXT.get() or {})
    merged.update({k: v for k, v in fields.items() if v})
    return CONTEXT.set(merged)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(CONTEXT.get() or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ContextTextFormatter(logging.Formatter):
    """The plain format, with the request/control id appended when one is bound."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = CONTEXT.get()
        if ctx:
            text += " [" + " ".join(f"{k}={v}" for k, v in sorted(ctx.items())) + "]"
        return text


def configure(level: str, fmt: str) -> None:
    """Root logging for ``serve``: ``fmt`` is ``text`` or ``json``."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else ContextTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level.lower() != "debug":  # pynetdicom logs every PDU at INFO
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class RequestIdMiddleware:
    """ASGI middleware: bind ``door=http``, the peer and a request id; echo ``X-Request-ID``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers") or []:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        client = scope.get("client") or ("", 0)
        token = bind(door="http", peer=f"{client[0]}:{client[1]}", request_id=request_id)

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            CONTEXT.reset(token)
