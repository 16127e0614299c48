"""MLLP framing codec against byte vectors: split frames, several per packet, faults."""

from __future__ import annotations

from fhirmwl.mllp.framing import (
    Frame,
    FrameDecoder,
    GarbageLimit,
    Incomplete,
    Oversized,
    frame,
)

MSG = b"MSH|^~\\&|A|B|C|D|20250101||ADT^A08|1|P|2.5\rPID|||X\r"


def test_one_frame() -> None:
    assert FrameDecoder().feed(frame(MSG)) == [Frame(MSG)]


def test_frame_split_at_every_byte() -> None:
    data = frame(MSG)
    for cut in range(1, len(data)):
        dec = FrameDecoder()
        events = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert events == [Frame(MSG)], cut


def test_byte_by_byte_two_frames() -> None:
    dec = FrameDecoder()
    events = []
    for b in frame(MSG) + frame(b"MSH|2"):
        events += dec.feed(bytes([b]))
    assert events == [Frame(MSG), Frame(b"MSH|2")]


def test_two_frames_in_one_packet_with_whitespace_between() -> None:
    data = frame(MSG) + b"\r\n" + frame(b"MSH|second")
    assert FrameDecoder().feed(data) == [Frame(MSG), Frame(b"MSH|second")]


def test_end_block_without_cr_is_accepted() -> None:
    dec = FrameDecoder()
    events = dec.feed(b"\x0bMSH|1\x1c") + dec.feed(b"\x0bMSH|2\x1c\r")
    assert events == [Frame(b"MSH|1"), Frame(b"MSH|2")]


def test_missing_end_block_then_new_frame() -> None:
    events = FrameDecoder().feed(b"\x0bMSH|lost" + frame(b"MSH|ok"))
    assert events == [Incomplete(b"MSH|lost", 8), Frame(b"MSH|ok")]


def test_oversized_frame_reported_once_with_head() -> None:
    dec = FrameDecoder(max_message_bytes=100)
    big = b"MSH|^~\\&|A|B\r" + b"X" * 10_000
    events = []
    for i in range(0, len(frame(big)), 333):
        events += dec.feed(frame(big)[i : i + 333])
    assert len(events) == 1 and isinstance(events[0], Oversized)
    assert events[0].size == len(big) and events[0].head.startswith(b"MSH|")
    assert dec.feed(frame(MSG)) == [Frame(MSG)]  # decoder usable afterwards


def test_garbage_limit() -> None:
    dec = FrameDecoder(max_garbage_bytes=10)
    assert dec.feed(b"GET / HTTP") == []
    assert dec.feed(b"/1.1\r\n") == [GarbageLimit(14)]
