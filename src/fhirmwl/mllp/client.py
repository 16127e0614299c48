"""MLLP clients: an asyncio one (tests, benchmarks) and a blocking one (the `v2 send` CLI).

Both send one framed message and wait for exactly one framed reply, using the same
`FrameDecoder` as the listener so that a reply split across packets is reassembled. Both speak
MLLP over TLS when given an ``ssl`` context (``security.tls.client_context``); the server
certificate is checked against the host name or address connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from ssl import SSLContext
from types import TracebackType

from fhirmwl.mllp.framing import Frame, FrameDecoder, frame


class MLLPError(Exception):
    """The peer closed the connection or answered with something that is not a frame."""


class MLLPClient:
    """`async with MLLPClient(host, port) as c: ack = await c.send(msg)`."""

    def __init__(
        self, host: str, port: int, timeout: float = 30.0, ssl: SSLContext | None = None
    ) -> None:
        self.host, self.port, self.timeout, self.ssl = host, port, timeout, ssl
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder(max_message_bytes=1 << 24)
        self._pending: list[bytes] = []

    async def connect(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl), self.timeout
        )
        self._reader, self._writer = reader, writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use it for split or malformed frames)."""
        assert self._writer is not None, "connect() first"
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes:
        assert self._reader is not None, "connect() first"
        while not self._pending:
            data = await asyncio.wait_for(self._reader.read(1 << 16), self.timeout)
            if not data:
                raise MLLPError("connection closed before a reply arrived")
            self._pending += [e.payload for e in self._decoder.feed(data) if isinstance(e, Frame)]
        return self._pending.pop(0)

    async def send(self, message: bytes) -> bytes:
        await self.send_raw(frame(message))
        return await self.receive()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = None

    async def __aenter__(self) -> MLLPClient:
        await self.connect()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def send_messages(
    host: str,
    port: int,
    messages: list[bytes],
    timeout: float = 30.0,
    ssl_context: SSLContext | None = None,
) -> list[bytes]:
    """Blocking: send each message on one connection and return the replies in order."""
    replies: list[bytes] = []
    decoder = FrameDecoder(max_message_bytes=1 << 24)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
    except BaseException:
        raw.close()  # a refused handshake must not leave the connection to the GC
        raise
    with sock:
        for message in messages:
            sock.sendall(frame(message))
            got: list[bytes] = []
            while not got:
                data = sock.recv(1 << 16)
                if not data:
                    raise MLLPError("connection closed before a reply arrived")
                got = [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
            replies += got
    return replies
