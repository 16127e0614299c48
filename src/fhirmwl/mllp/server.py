"""Asyncio MLLP listener: frames in, one handler call per message, the handler's reply out.

The listener knows nothing of orders: it hands each complete frame to an async handler and
writes back whatever bytes the handler returns (the ACK, sent after the handler has committed).
Messages of one connection are handled strictly one after another, so that an order's NW, XO and
CA from one sender are applied in the order they were sent; many connections run concurrently.
One bad peer never takes the listener down: handler exceptions become an AR ACK, oversized
frames are read to their end and answered with AR, a peer that sends bytes outside any frame is
disconnected after `max_garbage_bytes`, and idle connections are closed after `idle_timeout`.
With an ``ssl`` context the listener speaks MLLP over TLS; a verified client certificate's
subject is the peer identity (``PeerInfo.tls_subject``, IHE ATNA node authentication).
Connections beyond ``max_connections`` (all peers) or ``max_per_peer`` (one source address) are
closed at once (logged), so a flood of idle or half-framed connections cannot exhaust memory,
and one misbehaving host cannot lock the other senders out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any

from fhirmwl.hl7v2.ack import AckError, build_ack, encode_ack
from fhirmwl.hl7v2.errors import APPLICATION_INTERNAL_ERROR, V2Error
from fhirmwl.hl7v2.message import V2Message, parse_message
from fhirmwl.mllp.framing import (
    Frame,
    FrameDecoder,
    GarbageLimit,
    Incomplete,
    Oversized,
    frame,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeerInfo:
    """Who sent a message: remote address and a per-listener connection number."""

    host: str
    port: int
    connection_id: int
    tls_subject: str | None = None  # verified client certificate subject (mutual TLS)


Handler = Callable[[bytes, PeerInfo], Awaitable[bytes]]
_conn_ids = itertools.count(1)


def reject_reply(head: bytes, code: str, text: str) -> bytes:
    """An AR ACK for a frame the listener could not hand on (best effort on its MSH)."""
    msg: V2Message | None
    try:
        msg = parse_message(head.split(b"\r", 1)[0])
    except (V2Error, ValueError, IndexError):
        msg = None
    ack = build_ack(
        msg, "AR", errors=[AckError(code, text)], text=text[:80], control_id=f"R{next(_conn_ids)}"
    )
    return encode_ack(msg, ack)


class MLLPServer:
    """`await start()` binds (port 0 picks a free port, see `.port`); `await stop()` closes."""

    def __init__(
        self,
        handler: Handler,
        host: str = "0.0.0.0",
        port: int = 2575,
        max_message_bytes: int = 1 << 20,
        idle_timeout: float = 300.0,
        max_garbage_bytes: int = 4096,
        shutdown_grace: float = 10.0,
        ssl: SSLContext | None = None,
        max_connections: int = 0,
        max_per_peer: int = 0,
    ) -> None:
        self.handler = handler
        self.shutdown_grace = shutdown_grace  # stop(): seconds to finish messages in hand
        self._busy = 0  # connections between a complete frame and its written reply
        self._draining = False  # stop(): no new message is taken, the ones in hand finish
        self.ssl = ssl
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self._per_peer: Counter[str] = Counter()
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_garbage_bytes = max_garbage_bytes
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Called with (peer address, reason) when a TLS handshake is refused (the audit trail).
        self.tls_failure_hooks: list[Callable[[str, str], None]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect,
            self.host,
            self.port,
            limit=1 << 16,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("MLLP%s listening on %s:%d", " over TLS" if self.ssl else "", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let messages in hand be committed and ACKed (bounded), then close."""
        if self._server is None:
            return
        self._server.close()
        self._draining = True
        deadline = asyncio.get_running_loop().time() + self.shutdown_grace
        while self._busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        if self._busy:
            log.warning("MLLP stop: %d message(s) still in hand after the grace period", self._busy)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _refusal(self, host: str) -> str | None:
        if self.max_connections and len(self._tasks) >= self.max_connections:
            return f"{len(self._tasks)} connections open (mllp_max_connections)"
        if self.max_per_peer and self._per_peer[host] >= self.max_per_peer:
            return f"{self._per_peer[host]} connections from it (mllp_max_connections_per_peer)"
        return None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        host = str((writer.get_extra_info("peername") or ("?",))[0])
        refusal = self._refusal(host)
        if refusal:
            log.warning("MLLP connection from %s refused: %s", host, refusal)
            writer.close()
            return
        if task is not None:
            self._tasks.add(task)
        self._per_peer[host] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        addr = writer.get_extra_info("peername") or ("?", 0)
        peer = PeerInfo(str(addr[0]), int(addr[1]), 0, None)  # numbered once the peer is known
        try:
            if self.ssl is not None and not await self._handshake(writer, addr):
                return
            from fhirmwl.security.tls import peer_subject

            subject = peer_subject(writer.get_extra_info("ssl_object"))
            peer = PeerInfo(str(addr[0]), int(addr[1]), next(_conn_ids), subject)
            if subject is not None:
                log.info("MLLP connection %d: client certificate %s", peer.connection_id, subject)
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("MLLP connection %d closed: %s", peer.connection_id, exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
            self._per_peer[host] -= 1
            if not self._per_peer[host]:
                del self._per_peer[host]

    async def _handshake(self, writer: asyncio.StreamWriter, addr: tuple[Any, ...]) -> bool:
        """TLS after the connection limits (a refused peer costs no handshake); a failed
        handshake is logged and reported to ``tls_failure_hooks``, which asyncio's own TLS
        listener would swallow without a trace."""
        assert self.ssl is not None
        timeout = min(self.idle_timeout, 30.0)
        try:
            await writer.start_tls(self.ssl, ssl_handshake_timeout=timeout)
        except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
            reason = str(exc)[:200] or type(exc).__name__
            log.warning("MLLP TLS handshake with %s failed: %s", addr[0], reason)
            for hook in self.tls_failure_hooks:
                with contextlib.suppress(Exception):
                    hook(f"{addr[0]}:{addr[1]}", reason)
            return False
        return True

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: PeerInfo
    ) -> None:
        decoder = FrameDecoder(self.max_message_bytes, self.max_garbage_bytes)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), self.idle_timeout)
            except TimeoutError:
                log.info("MLLP connection %d idle, closing", peer.connection_id)
                return
            if not data:
                if decoder.has_partial_frame:
                    log.warning("MLLP connection %d closed inside a frame", peer.connection_id)
                return
            if self._draining:  # shutting down: unacknowledged, so the sender sends it again
                log.info("MLLP connection %d: closed while shutting down", peer.connection_id)
                return
            self._busy += 1
            try:
                for event in decoder.feed(data):
                    reply = await self._dispatch(event, peer)
                    if reply is None and isinstance(event, GarbageLimit):
                        log.warning("MLLP connection %d sent non-MLLP data", peer.connection_id)
                        return
                    if reply:
                        writer.write(frame(reply))
                        await writer.drain()
            finally:
                self._busy -= 1

    async def _dispatch(self, event: object, peer: PeerInfo) -> bytes | None:
        if isinstance(event, Frame):
            try:
                return await self.handler(event.payload, peer)
            except Exception as exc:  # never let one message kill the connection
                log.exception("MLLP handler failed on connection %d", peer.connection_id)
                return reject_reply(event.payload, APPLICATION_INTERNAL_ERROR, f"{exc}")
        if isinstance(event, Oversized):
            text = f"message of {event.size} bytes exceeds {self.max_message_bytes}"
            return reject_reply(event.head, APPLICATION_INTERNAL_ERROR, text)
        if isinstance(event, Incomplete):
            log.warning("MLLP connection %d: frame without end block dropped", peer.connection_id)
            return b""
        return None
