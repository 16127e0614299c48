"""Fixtures for the trust-boundary tests: a development PKI and a rogue one (other CA)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.security.devcerts import write_dev_certs


@pytest.fixture(scope="session")
def dcmtk_items(mwl_corpus: Path) -> list[Dataset]:
    return [read_worklist_file(p) for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem, server-key.pem, client.pem (CN=ct01), client-key.pem."""
    out = tmp_path_factory.mktemp("pki")
    write_dev_certs(out, client_cn="ct01")
    return out


@pytest.fixture(scope="session")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates from another CA: its client certificate must be refused."""
    out = tmp_path_factory.mktemp("rogue")
    write_dev_certs(out, client_cn="ct01")
    return out


def tls_settings(certs: Path, **extra: object) -> dict[str, object]:
    return {
        "tls_cert": str(certs / "server.pem"),
        "tls_key": str(certs / "server-key.pem"),
        "tls_client_ca": str(certs / "ca.pem"),
        **extra,
    }
