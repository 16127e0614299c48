"""MLLP limits on a running broker: per-peer and total connection caps, the per-connection
buffer (oversized frame answered AR) and the idle timeout, with a normal sender still served."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.mllp_service.messages import msa, orm

MAX_BYTES = 64 * 1024


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Runtime]:
    with running_broker(
        f"sqlite:///{tmp_path / 'm.db'}",
        mllp=True,
        mllp_max_connections=6,
        mllp_max_connections_per_peer=3,
        mllp_idle_timeout=2,
        mllp_max_message_bytes=MAX_BYTES,
    ) as runtime:
        yield runtime


def _open(port: int, source: str, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), 10, (source, 0))
        s.sendall(b"\x0bMSH|^~\\&|FLOOD|X|" + b"x" * (MAX_BYTES // 2))  # a partial frame
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_per_peer_cap_keeps_other_senders_served(broker: Runtime) -> None:
    port = broker.settings.mllp_port
    flood = _open(port, "127.0.0.2", 5)
    try:
        assert [_closed_by_server(s, 1.0) for s in flood[3:]] == [True, True]
        ack = send_messages("127.0.0.1", port, [orm("NW", "MLL1", "C-MLL-1")], timeout=30)
        assert msa(ack[0])[0] == "AA"  # served while 127.0.0.2 holds its 3 half frames
        start = time.monotonic()
        assert all(_closed_by_server(s, 15) for s in flood[:3])  # idle timeout (2 s)
        assert time.monotonic() - start < 15
    finally:
        for s in flood:
            s.close()


def test_total_cap_then_recovery_after_idle_timeout(broker: Runtime) -> None:
    port = broker.settings.mllp_port
    flood = _open(port, "127.0.0.2", 3) + _open(port, "127.0.0.3", 3)
    try:
        time.sleep(0.2)
        late = socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.4", 0))
        with contextlib.closing(late):
            assert _closed_by_server(late, 1.0)  # the seventh connection: over the total cap
        for s in flood:
            assert _closed_by_server(s, 15)  # freed by the idle timeout
        ack = send_messages("127.0.0.1", port, [orm("NW", "MLL2", "C-MLL-2")], timeout=30)
        assert msa(ack[0])[0] == "AA"
    finally:
        for s in flood:
            s.close()


def test_oversized_frame_is_answered_ar_and_connection_kept(broker: Runtime) -> None:
    big = orm("NW", "MLL3", "C-MLL-3") + b"NTE|1||" + b"y" * MAX_BYTES + b"\r"
    small = orm("NW", "MLL4", "C-MLL-4")
    acks = send_messages("127.0.0.1", broker.settings.mllp_port, [big, small], timeout=30)
    assert msa(acks[0])[0] == "AR"
    assert b"exceeds" in acks[0]
    assert msa(acks[1])[0] == "AA"
