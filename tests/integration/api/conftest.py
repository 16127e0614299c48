"""A real ``fhirmwl`` HTTP listener on a free loopback port, with an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhirmwl.runtime import Runtime
from tests.conftest import running_broker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Runtime]:
    with running_broker(f"sqlite:///{tmp_path / 'api.db'}") as runtime:
        yield runtime


@pytest.fixture
def client(server: Runtime) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.settings.fhir_base,
        timeout=30,
        headers={"Content-Type": "application/fhir+json"},
    ) as c:
        yield c
