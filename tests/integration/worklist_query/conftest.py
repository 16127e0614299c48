"""A running broker (HTTP + DICOM on free loopback ports) loaded with the generated worklist."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from wlq_worklist import free_port, steps, transactions

from fhirmwl.config import load_settings
from fhirmwl.runtime import Runtime


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    db = tmp_path_factory.mktemp("wlq") / "wlq.db"
    settings = load_settings(
        None,
        db=f"sqlite:///{db}",
        http_port=free_port(),
        dicom_port=free_port(),
        mllp=False,
        timezone="UTC",
    )
    runtime = Runtime(settings)
    runtime.start()
    try:
        with httpx.Client(base_url=settings.fhir_base, timeout=60) as client:
            for bundle in transactions(steps()):
                r = client.post("", json=bundle)
                assert r.status_code == 200, r.text[:500]
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="session")
def http(broker: Runtime) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.settings.fhir_base, timeout=60) as client:
        yield client
