"""A real ``fhirmwl`` runtime with the MLLP listener (HTTP on, DICOM off) on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhirmwl.config import load_settings
from fhirmwl.fhir import model
from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from fhirmwl.store import Tx
from tests.conftest import free_port


def start_runtime(db: str, **extra: Any) -> Runtime:
    settings = load_settings(
        None, db=db, http_port=free_port(), mllp=True, mllp_port=free_port(), dicom=False, **extra
    )
    runtime = Runtime(settings)
    runtime.start()
    return runtime


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Runtime]:
    runtime = start_runtime(f"sqlite:///{tmp_path / 'v2.db'}")
    yield runtime
    runtime.stop()


@pytest.fixture
def send(server: Runtime) -> Callable[..., list[bytes]]:
    def _send(*messages: bytes) -> list[bytes]:
        return send_messages("127.0.0.1", server.settings.mllp_port, list(messages), timeout=30)

    return _send


def order_state(tx: Tx, placer: str) -> dict[str, Any]:
    """ISR, RP and Task statuses and key values of the order with placer number ``placer``."""
    from fhirmwl.services.orders.graph import load_order

    found = [
        (s, i)
        for s in ("urn:fhirmwl:issuer:RIS", "urn:fhirmwl:id:placer", "")
        if (i := tx.find_unique("PLAC", s, placer))
    ]
    assert found, f"no order with placer {placer}"
    graph = load_order(tx, found[0][1][1])
    isr = graph.isr.resource()
    return {
        "isr_id": graph.isr_id,
        "isr": isr.get("status"),
        "rps": [r.resource().get("status") for r in graph.rps],
        "tasks": [t.resource().get("status") for t in graph.tasks],
        "accession": (model.identifier_of_type(isr, model.ACSN) or {}).get("value"),
        "subject": (isr.get("subject") or {}).get("reference"),
        "code_text": [
            (r.resource().get("code") or {})
            .get("concept", {})
            .get("coding", [{}])[0]
            .get("display")
            for r in graph.rps
        ],
        "n_isr": 1,
    }
