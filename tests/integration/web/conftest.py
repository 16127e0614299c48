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
    """Start brokers; they stop at teardown. A test that passes ``db_url`` lists it *before*
    ``start_desk``: pytest tears fixtures down in reverse order, so the brokers stop before the
    PostgreSQL schema is dropped (dropping it under a running broker can deadlock)."""
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
def desk(db_url: str, start_desk: Callable[..., Desk]) -> Desk:
    return start_desk(db_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium; missing is a failure under CI (install-test-deps.sh installs it)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: run scripts/install-test-deps.sh")
        pytest.skip("chromium not installed (scripts/install-test-deps.sh)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def console_allowed() -> list[str]:
    """Console error texts a test expects (e.g. a 403 it provokes); the page fixture allows
    messages starting with one of them."""
    return []


@pytest.fixture
def page(browser: Any, console_allowed: list[str]) -> Iterator[Any]:
    """A 1280×800 page that fails the test on any console error or uncaught exception."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield pg
    context.close()
    problems = [p for p in problems if not p.startswith(tuple(console_allowed))]
    assert problems == [], problems
