"""`fhirmwl v2 send` against a real listener running in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirmwl.cli_v2 import app
from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import MLLPServer, PeerInfo

GOLDEN = Path(__file__).resolve().parents[2] / "unit" / "mapping_v2" / "golden"


async def _handler(payload: bytes, peer: PeerInfo) -> bytes:
    return evaluate(payload, MappingContext()).ack


@pytest.fixture
def listener() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = MLLPServer(_handler, host="127.0.0.1", port=0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_send_prints_acks(listener: int) -> None:
    files = [str(GOLDEN / "orm_nw.hl7"), str(GOLDEN / "adt_a40.hl7")]
    result = CliRunner().invoke(app, ["send", "--port", str(listener), *files])
    assert result.exit_code == 0, result.output
    assert "MSA|AA|MSG0001" in result.output and "MSA|AA|MSG0020" in result.output


def test_send_exit_code_when_refused(listener: int, tmp_path: Path) -> None:
    bad = tmp_path / "bar.hl7"
    bad.write_bytes(b"MSH|^~\\&|A|B|C|D|20250101||BAR^P01|X1|P|2.4\r")
    result = CliRunner().invoke(app, ["send", "--port", str(listener), str(bad)])
    assert result.exit_code == 1 and "MSA|AR|X1" in result.output
