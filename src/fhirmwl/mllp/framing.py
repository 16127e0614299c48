"""MLLP framing as a pure, incremental codec: bytes in, frames and framing faults out.

TCP delivers a stream, not messages: one `read()` may hold half a frame, or two frames, or the
end of one and the start of the next. `FrameDecoder.feed` keeps the partial state between calls
and reports, besides complete frames, the faults a listener must act on: an oversized frame (read
to its end and dropped, keeping its first segment so that the reply can name MSH-10), a frame whose
end block never came before the next start block, and bytes outside any frame (a peer that does
not speak MLLP, to be disconnected once `max_garbage_bytes` is exceeded). No IO happens here.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
_HEAD_KEEP = 4096


@dataclass(frozen=True)
class Frame:
    """A complete message (the bytes between the start block and the end block)."""

    payload: bytes


@dataclass(frozen=True)
class Oversized:
    """A frame longer than the limit; ``head`` holds its first bytes (its MSH segment)."""

    head: bytes
    size: int


@dataclass(frozen=True)
class Incomplete:
    """A frame that a new start block interrupted before its end block: dropped."""

    head: bytes
    size: int


@dataclass(frozen=True)
class GarbageLimit:
    """More than ``max_garbage_bytes`` arrived outside any frame: the peer is not MLLP."""

    size: int


FrameEvent = Frame | Oversized | Incomplete | GarbageLimit


def frame(payload: bytes) -> bytes:
    """Wrap one message in MLLP start/end blocks."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    """Incremental MLLP decoder; one instance per connection."""

    def __init__(self, max_message_bytes: int = 1 << 20, max_garbage_bytes: int = 4096) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_garbage_bytes = max_garbage_bytes
        self._buf = bytearray()
        self._in_frame = False
        self._size = 0
        self._oversized = False
        self._pending_fs = False
        self._garbage = 0

    @property
    def has_partial_frame(self) -> bool:
        return self._in_frame

    def feed(self, data: bytes) -> list[FrameEvent]:
        events: list[FrameEvent] = []
        i, n = 0, len(data)
        while i < n:
            if self._pending_fs:
                self._pending_fs = False
                events.append(self._finish())
                if data[i : i + 1] == CARRIAGE_RETURN:
                    i += 1
                continue
            if not self._in_frame:
                i = self._skip_to_start(data, i, events)
                continue
            i = self._consume_frame(data, i, events)
        return events

    def _skip_to_start(self, data: bytes, i: int, events: list[FrameEvent]) -> int:
        start = data.find(START_BLOCK, i)
        junk = data[i:] if start == -1 else data[i:start]
        self._garbage += len(junk.strip(b"\r\n\x00 \t"))
        if self._garbage > self.max_garbage_bytes:
            events.append(GarbageLimit(self._garbage))
            self._garbage = 0
        if start == -1:
            return len(data)
        self._begin()
        return start + 1

    def _consume_frame(self, data: bytes, i: int, events: list[FrameEvent]) -> int:
        fs = data.find(END_BLOCK, i)
        vt = data.find(START_BLOCK, i)
        if vt != -1 and (fs == -1 or vt < fs):
            self._append(data[i:vt])
            events.append(Incomplete(bytes(self._buf[:_HEAD_KEEP]), self._size))
            self._begin()
            return vt + 1
        if fs == -1:
            self._append(data[i:])
            return len(data)
        self._append(data[i:fs])
        if fs + 1 >= len(data):
            self._pending_fs = True  # the CR may come in the next packet
            return len(data)
        events.append(self._finish())
        return fs + 2 if data[fs + 1 : fs + 2] == CARRIAGE_RETURN else fs + 1

    def _begin(self) -> None:
        self._in_frame = True
        self._buf.clear()
        self._size = 0
        self._oversized = False
        self._garbage = 0

    def _append(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._oversized:
            return
        if self._size > self.max_message_bytes:
            self._oversized = True
            room = max(0, _HEAD_KEEP - len(self._buf))
            self._buf += chunk[:room]
            del self._buf[_HEAD_KEEP:]
            return
        self._buf += chunk

    def _finish(self) -> FrameEvent:
        self._in_frame = False
        payload = bytes(self._buf)
        self._buf.clear()
        if self._oversized:
            return Oversized(payload, self._size)
        return Frame(payload)
