"""Refused TLS clients and TLS-authenticated peers in the audit trail (DICOM door).

A modality without a client certificate is refused in the handshake, and that refusal is a
security event; a modality with one is audited under its certificate subject.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.security.tls import client_context
from tests.conftest import running_broker
from tests.integration.security.conftest import tls_settings


def _events(base: str, query: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        bundle = httpx.get(f"{base}/fhir/AuditEvent?{query}").json()
        found = [e["resource"] for e in bundle.get("entry") or []]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_refused_certificate_and_certificate_subject_are_audited(
    tmp_path: Path, certs: Path
) -> None:
    ca = str(certs / "ca.pem")
    settings = tls_settings(certs, tls_require_client_cert=True, http_tls=False)
    with running_broker(f"sqlite:///{tmp_path / 't.db'}", dicom=True, **settings) as rt:
        port = rt.settings.dicom_port
        bare = ssl.create_default_context(cafile=ca)  # no client certificate
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with bare.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)  # TLS 1.3: the server's refusal arrives on the first read
        except (OSError, ssl.SSLError):
            pass
        ae = AE(ae_title="CT01")
        ae.add_requested_context(ModalityWorklistInformationFind)
        mutual = client_context(ca, str(certs / "client.pem"), str(certs / "client-key.pem"))
        assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL", tls_args=(mutual, "localhost"))
        assert assoc.is_established
        query = Dataset()
        query.PatientName = ""
        list(assoc.send_c_find(query, ModalityWorklistInformationFind))
        assoc.release()
        base = f"http://127.0.0.1:{rt.settings.http_port}"
        refused = _events(base, "code=110126", 1)
        found = _events(base, "code=110112", 1)
    assert refused[0]["outcome"]["code"]["code"] == "4"
    assert refused[0]["agent"][0]["who"]["identifier"]["value"] == "unauthenticated"
    assert "CN=ct01" in found[0]["agent"][0]["policy"][0]


def test_refused_mllp_handshake_is_audited(tmp_path: Path, certs: Path) -> None:
    ca = str(certs / "ca.pem")
    settings = tls_settings(certs, tls_require_client_cert=True, http_tls=False, mllp_tls=True)
    with running_broker(f"sqlite:///{tmp_path / 't.db'}", mllp=True, **settings) as rt:
        bare = ssl.create_default_context(cafile=ca)  # no client certificate
        try:
            raw = socket.create_connection(("127.0.0.1", rt.settings.mllp_port), timeout=10)
            with bare.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)  # TLS 1.3: the server's refusal arrives on the first read
        except (OSError, ssl.SSLError):
            pass
        refused = _events(f"http://127.0.0.1:{rt.settings.http_port}", "code=110126", 1)
    assert len(refused) == 1
    details = {d["type"]["text"]: d["valueString"] for d in refused[0]["entity"][0]["detail"]}
    assert details["listener"] == "mllp"
    assert "certificate" in details["tls"].lower()
    assert refused[0]["agent"][0]["networkString"].startswith("127.0.0.1:")
