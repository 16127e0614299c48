"""HTTP limits that keep the API up: body size, Bundle entries, slow headers, connections, TLS.

* ``BodyLimitMiddleware`` answers 413 with an OperationOutcome when the declared
  ``Content-Length`` or the streamed body exceeds ``http_max_body_bytes``, before the body is
  buffered or parsed (a 50 MB resource would otherwise be parsed, validated and stored). The
  connection is kept: uvicorn discards the rest of the body as it arrives, so the client reads
  the 413 instead of a connection reset in the middle of its upload.
* ``check_bundle_entries`` refuses Bundles with more than ``http_max_bundle_entries`` entries
  (413, ``too-costly``): a 10,000-entry transaction holds the store's write lock for seconds and
  HL7 ACKs wait behind it.
* ``HeaderTimeoutProtocol`` closes a connection with 408 when its request headers are not
  complete ``http_header_timeout`` seconds after the connection opened or the request began;
  uvicorn only times out idle keep-alive connections, so a slowloris peer sending one header
  byte a minute would otherwise hold a connection forever; headers larger than
  ``http_max_header_bytes`` are answered 431 (uvicorn has no header size setting for the
  httptools protocol). It extends uvicorn's httptools protocol (the one ``uvicorn[standard]``
  selects) by a few hooks rather than reimplementing it.
* ``uvicorn_options`` turns the settings into uvicorn ``Config`` arguments: the shared TLS
  context (``security.tls``), the protocol above and ``limit_concurrency`` (503 when exceeded).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fhirmwl.errors import FhirMwlError
from fhirmwl.fhir.outcome import from_error
from fhirmwl.security.tls import listener_context

log = logging.getLogger("fhirmwl.security")


class PayloadTooLarge(FhirMwlError):
    http_status = 413
    issue_code = "too-long"


class TooManyEntries(FhirMwlError):
    http_status = 413
    issue_code = "too-costly"


def check_bundle_entries(resource: dict[str, Any], limit: int) -> None:
    """Raise :class:`TooManyEntries` for a Bundle with more than ``limit`` entries."""
    if limit <= 0 or resource.get("resourceType") != "Bundle":
        return
    entries = resource.get("entry")
    if isinstance(entries, list) and len(entries) > limit:
        raise TooManyEntries(
            f"Bundle has {len(entries)} entries; this server accepts at most {limit} per request "
            "(setting http_max_bundle_entries); split it into several Bundles",
            expression="Bundle.entry",
        )


async def _send_outcome(send: Any, err: FhirMwlError) -> None:
    import orjson

    body = orjson.dumps(from_error(err))
    await send(
        {
            "type": "http.response.start",
            "status": err.http_status,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """ASGI middleware: request bodies larger than ``max_bytes`` are answered 413."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes "
            "(setting http_max_body_bytes)"
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            log.warning("HTTP body of %s bytes refused (413)", declared.decode())
            await _send_outcome(send, self._error(declared.decode()))
            return
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error(f"more than {received}")
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as err:
            if started:
                raise
            log.warning("HTTP streamed body refused (413): %s", err.message)
            await _send_outcome(send, err)


def _plain_response(status: bytes, message: str) -> bytes:
    text = message.encode()
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n"
    )
    return head + text


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap for request headers."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_deadline is None or self.transport.is_closing():
            return
        self._header_bytes += len(data)  # headers still incomplete after this chunk
        if self.max_header_bytes and self._header_bytes > self.max_header_bytes:
            log.warning("HTTP connection from %s: headers over the limit (431)", self.client)
            self._disarm_header_deadline()
            message = f"request headers exceed {self.max_header_bytes} bytes"
            self.transport.write(_plain_response(b"431 Request Header Fields Too Large", message))
            self.transport.close()

    def _arm_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is None and self.header_timeout > 0:
            self._header_deadline = self.loop.call_later(
                self.header_timeout, self._header_deadline_expired
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_expired(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.warning("HTTP connection from %s: headers too slow, closed (408)", self.client)
            message = f"request headers not complete within {self.header_timeout:g} s"
            self.transport.write(_plain_response(b"408 Request Timeout", message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        self._header_bytes = 0
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def timeout_keep_alive_handler(self) -> None:
        self._disarm_header_deadline()
        super().timeout_keep_alive_handler()


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """Extra ``uvicorn.Config`` arguments for TLS, slow headers and the connection cap."""
    protocol = type(
        "FhirMwlHttpProtocol",
        (HeaderTimeoutProtocol,),
        {
            "header_timeout": float(settings.http_header_timeout),
            "max_header_bytes": settings.http_max_header_bytes,
        },
    )
    options: dict[str, Any] = {
        "http": protocol,
        "limit_concurrency": settings.http_max_connections or None,
    }
    context = listener_context(settings, "http")
    if context is not None:
        options["ssl_context_factory"] = lambda _config, _default: context
    return options
