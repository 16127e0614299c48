"""Fixtures for the DICOM worklist SCP tests: corpus items and a running SCP on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mwl_scu import free_port
from pydicom.dataset import Dataset

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP
from fhirmwl.worklist import InMemorySource, WorklistSource


@pytest.fixture(scope="session")
def dcmtk_items(mwl_corpus: Path) -> list[Dataset]:
    return [read_worklist_file(p) for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))]


StartSCP = Callable[..., WorklistSCP]


@pytest.fixture
def start_scp() -> Iterator[StartSCP]:
    started: list[WorklistSCP] = []

    def start(
        source: WorklistSource | Callable[[], WorklistSource],
        policy: AccessPolicy | None = None,
    ) -> WorklistSCP:
        factory = source if callable(source) else (lambda: source)
        scp = WorklistSCP(factory, "FHIRMWL", "127.0.0.1", free_port(), policy)
        scp.start()
        started.append(scp)
        return scp

    yield start
    for scp in started:
        scp.stop()


@pytest.fixture
def dcmtk_scp(start_scp: StartSCP, dcmtk_items: list[Dataset]) -> WorklistSCP:
    return start_scp(InMemorySource(dcmtk_items))
