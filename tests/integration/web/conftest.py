"""Desk fixtures: a running broker (HTTP + MLLP, optionally DICOM) and a way to send HL7."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from tests.conftest import CORPUS, running_broker
from tests.integration.web.messages import ack_code

TZ = "Europe/Berlin"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def today() -> str:
    return datetime.now(ZoneInfo(TZ)).strftime("%Y%m%d")


def require_corpus() -> Path:
    """The HL7 corpus; missing is a failure under CI / FHIRMWL_REQUIRE_CORPUS, else a skip."""
    hl7 = CORPUS / "hl7"
    if not hl7.is_dir():
        if os.environ.get("FHIRMWL_REQUIRE_CORPUS") or os.environ.get("CI"):
            pytest.fail(f"corpus required but {hl7} is missing")
        pytest.skip("../shared/corpus/hl7 is not present")
    return hl7


class Desk:
    """A running broker plus an HTTP client on its desk and an MLLP sender."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.base = f"http://127.0.0.1:{self.settings.http_port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def send(self, *messages: bytes) -> list[bytes]:
        return send_messages("127.0.0.1", self.settings.mllp_port, list(messages), 30)

    def send_ok(self, message: bytes) -> None:
        (ack,) = self.send(message)
        assert ack_code(ack) == "AA", ack.decode("utf-8", "replace")

    def csrf(self) -> str:
        """The form token (the client keeps the cookie the first page set)."""
        self.http.get("/ui/status")
        return str(self.http.cookies["fhirmwl_desk_csrf"])


@pytest.fixture
def start_desk(tmp_path: Path) -> Iterator[Callable[..., Desk]]:
    stack: list[Any] = []

    def start(db: str | None = None, **settings: Any) -> Desk:
        ctx = running_broker(
            db or f"sqlite:///{tmp_path / f'desk{len(stack)}.db'}",
            mllp=True,
            timezone=TZ,
            **settings,
        )
        runtime = ctx.__enter__()
        desk = Desk(runtime)
        stack.append((ctx, desk))
        return desk

    yield start
    for ctx, desk in reversed(stack):
        desk.http.close()
        ctx.__exit__(None, None, None)


@pytest.fixture
def desk(start_desk: Callable[..., Desk], db_url: str) -> Desk:
    return start_desk(db_url)
