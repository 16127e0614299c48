"""A running broker (HTTP + DICOM on free loopback ports) loaded with the generated worklist."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import running_broker
from wlq_worklist import steps, transactions

from fhirmwl.runtime import Runtime


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    db = tmp_path_factory.mktemp("wlq") / "wlq.db"
    with running_broker(f"sqlite:///{db}", dicom=True, timezone="UTC") as runtime:
        with httpx.Client(base_url=runtime.settings.fhir_base, timeout=60) as client:
            for bundle in transactions(steps()):
                r = client.post("", json=bundle)
                assert r.status_code == 200, r.text[:500]
        yield runtime


@pytest.fixture(scope="session")
def http(broker: Runtime) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.settings.fhir_base, timeout=60) as client:
        yield client
