"""A broker with HTTP and MLLP on free ports, on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker


@pytest.fixture
def broker(db_url: str) -> Iterator[Runtime]:
    with running_broker(db_url, mllp=True) as runtime:
        yield runtime


@pytest.fixture
def lenient_broker(db_url: str) -> Iterator[Runtime]:
    with running_broker(db_url, mllp=True, validation="lenient") as runtime:
        yield runtime


def sender(runtime: Runtime) -> Callable[..., list[bytes]]:
    def send(*messages: bytes) -> list[bytes]:
        return send_messages("127.0.0.1", runtime.settings.mllp_port, list(messages), timeout=60)

    return send


def client(runtime: Runtime) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{runtime.settings.http_port}/fhir", timeout=60)


def worklist_items(runtime: Runtime) -> list[dict[str, Any]]:
    import json

    from fhirmwl.worklist.itemcodec import unpack_item

    with runtime.services.store.read() as tx:
        rows = tx.conn.execute("SELECT item_json FROM worklist ORDER BY sps_id").fetchall()
    return [json.loads(unpack_item(r[0]) or "") for r in rows]


def err_segments(ack: bytes) -> list[list[str]]:
    return [
        line.split("|") for line in ack.decode("latin-1").split("\r") if line.startswith("ERR|")
    ]
