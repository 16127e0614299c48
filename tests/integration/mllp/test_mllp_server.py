"""The asyncio MLLP listener over loopback with real TCP clients.

The handler is the pure intake (`evaluate`): it answers each message with the ACK the mapping
deserves, which is enough to check framing, ordering, concurrency and fault isolation; the
service layer that commits before answering comes later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import MLLPClient, MLLPError, MLLPServer, PeerInfo, frame, send_messages

CTX = MappingContext()


def _msg(control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||ADT^A08^ADT_A01|{control_id}|P|2.5.1\r"
        "PID|||P1^^^HOSP^MR||DOE^JANE||19800101|F\r"
    ).encode()


def _msa(ack: bytes) -> list[str]:
    line = next(s for s in ack.decode().split("\r") if s.startswith("MSA|"))
    return line.split("|")


async def echo_ack(payload: bytes, peer: PeerInfo) -> bytes:
    return evaluate(payload, CTX).ack


def _serve(
    body: Callable[[MLLPServer], Awaitable[None]], handler: object = echo_ack, **kw: object
) -> None:
    async def main() -> None:
        server = MLLPServer(handler, host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]
        await server.start()
        try:
            await asyncio.wait_for(body(server), 30)
        finally:
            await server.stop()

    asyncio.run(main())


def test_round_trip_and_several_messages_per_connection() -> None:
    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as client:
            for i in range(3):
                assert _msa(await client.send(_msg(f"C{i}")))[1:3] == ["AA", f"C{i}"]

    _serve(body)


def test_blocking_client() -> None:
    async def body(server: MLLPServer) -> None:
        msgs = [_msg("B1"), b"MSH|^~\\&|X|Y|Z|W|2025||BAR^P01|B2|P|2.4\r"]
        acks = await asyncio.to_thread(send_messages, "127.0.0.1", server.port, msgs)
        assert [_msa(a)[1:3] for a in acks] == [["AA", "B1"], ["AR", "B2"]]

    _serve(body)


def test_split_frames_and_two_frames_in_one_packet() -> None:
    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as client:
            data = frame(_msg("S1"))
            for part in (data[:1], data[1:20], data[20:-1], data[-1:]):
                await client.send_raw(part)
                await asyncio.sleep(0.01)
            assert _msa(await client.receive())[2] == "S1"
            await client.send_raw(frame(_msg("T1")) + frame(_msg("T2")))
            assert [_msa(await client.receive())[2] for _ in range(2)] == ["T1", "T2"]

    _serve(body)


def test_oversized_frame_is_rejected_and_connection_survives() -> None:
    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as client:
            big = _msg("BIG") + b"NTE|||" + b"x" * 5000 + b"\r"
            msa = _msa(await client.send(big))
            assert msa[1:3] == ["AR", "BIG"]
            assert _msa(await client.send(_msg("AFTER")))[1:3] == ["AA", "AFTER"]

    _serve(body, max_message_bytes=2000)


def test_missing_end_block_drops_only_the_broken_frame() -> None:
    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as client:
            await client.send_raw(b"\x0b" + _msg("LOST"))
            assert _msa(await client.send(_msg("OK")))[2] == "OK"

    _serve(body)


def test_handler_failure_becomes_ar_and_connection_survives() -> None:
    calls = 0

    async def flaky(payload: bytes, peer: PeerInfo) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        return await echo_ack(payload, peer)

    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as client:
            ack = await client.send(_msg("F1"))
            assert _msa(ack)[1:3] == ["AR", "F1"] and b"207" in ack
            assert _msa(await client.send(_msg("F2")))[1] == "AA"

    _serve(body, handler=flaky)


def test_fifty_concurrent_senders() -> None:
    async def sender(port: int, n: int) -> list[str]:
        async with MLLPClient("127.0.0.1", port) as client:
            return [_msa(await client.send(_msg(f"P{n}-{i}")))[2] for i in range(5)]

    async def body(server: MLLPServer) -> None:
        results = await asyncio.gather(*(sender(server.port, n) for n in range(50)))
        assert results == [[f"P{n}-{i}" for i in range(5)] for n in range(50)]

    _serve(body)


def test_garbage_peer_is_disconnected_and_others_unaffected() -> None:
    async def body(server: MLLPServer) -> None:
        async with MLLPClient("127.0.0.1", server.port) as good:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\n" + b"x" * 500)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()
            assert _msa(await good.send(_msg("G1")))[1:3] == ["AA", "G1"]

    _serve(body, max_garbage_bytes=100)


def test_peer_vanishing_mid_frame_and_idle_timeout() -> None:
    async def body(server: MLLPServer) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x0b" + _msg("HALF")[:10])
        await writer.drain()
        writer.close()
        idle = MLLPClient("127.0.0.1", server.port, timeout=5)
        await idle.connect()
        with pytest.raises(MLLPError):
            await idle.receive()  # the server closes the idle connection
        await idle.close()
        async with MLLPClient("127.0.0.1", server.port) as client:
            assert _msa(await client.send(_msg("ALIVE")))[2] == "ALIVE"

    _serve(body, idle_timeout=0.3)
