"""TLS on all three doors of one ``fhirmwl serve`` runtime, with real TLS peers.

HTTPS: httpx with the development CA and ``openssl s_client``. MLLP over TLS: ``fhirmwl v2
send --tls-ca/--tls-cert/--tls-key``. DICOM TLS: DCMTK ``findscu``/``echoscu +tls`` and
pynetdicom. Mutual TLS is required, so a missing client certificate or one from another CA is
refused on every door; the TLS 1.1 handshake is refused too.
"""

from __future__ import annotations

import copy
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification
from typer.testing import CliRunner

from fhirmwl.cli import app
from fhirmwl.dicom.pending import PendingSender
from fhirmwl.dicom.scp import WorklistSCP
from fhirmwl.mllp import MLLPError, send_messages
from fhirmwl.runtime import Runtime
from fhirmwl.security.tls import client_context
from fhirmwl.worklist import InMemorySource
from tests.conftest import free_port, running_broker
from tests.integration.mllp_service.messages import msa, orm
from tests.integration.security.conftest import tls_settings


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Runtime]:
    db = f"sqlite:///{tmp_path_factory.mktemp('tls') / 'tls.db'}"
    settings = tls_settings(certs, tls_require_client_cert=True)
    with running_broker(db, dicom=True, mllp=True, **settings) as runtime:
        yield runtime


def _client(certs: Path, with_cert: bool = True) -> ssl.SSLContext:
    if with_cert:
        return client_context(
            str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
        )
    return client_context(str(certs / "ca.pem"))


# ---- HTTPS ------------------------------------------------------------------------------
def test_https_with_client_certificate(broker: Runtime, certs: Path) -> None:
    base = broker.settings.fhir_base
    assert base.startswith("https://127.0.0.1:")
    response = httpx.get(f"{base}/metadata", verify=_client(certs), timeout=10)
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


def test_https_refuses_missing_or_foreign_client_certificate(
    broker: Runtime, certs: Path, rogue: Path
) -> None:
    base = broker.settings.fhir_base
    foreign = client_context(
        str(certs / "ca.pem"), str(rogue / "client.pem"), str(rogue / "client-key.pem")
    )
    for context in (_client(certs, with_cert=False), foreign):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/metadata", verify=context, timeout=10).raise_for_status()
    with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
        httpx.get(base.replace("https", "http") + "/metadata", timeout=10)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_openssl_s_client(broker: Runtime, certs: Path) -> None:
    target = f"127.0.0.1:{broker.settings.http_port}"
    common = ["openssl", "s_client", "-connect", target, "-CAfile", str(certs / "ca.pem")]
    mutual = ["-cert", str(certs / "client.pem"), "-key", str(certs / "client-key.pem")]
    ok = subprocess.run(
        [*common, *mutual, "-tls1_2", "-verify_return_error"],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    out = ok.stdout.decode()
    assert "Verify return code: 0 (ok)" in out, out
    assert "Protocol  : TLSv1.2" in out or "TLSv1.2" in out
    old = subprocess.run([*common, *mutual, "-tls1_1"], input=b"", capture_output=True, timeout=30)
    assert old.returncode != 0  # TLS 1.1 is refused


# ---- MLLP over TLS ----------------------------------------------------------------------
def test_v2_send_over_tls(broker: Runtime, certs: Path, tmp_path: Path) -> None:
    message = tmp_path / "orm.hl7"
    message.write_bytes(orm("NW", "TLS1", "C-TLS-1"))
    args = ["v2", "send", "--port", str(broker.settings.mllp_port), str(message)]
    tls = [
        "--tls-ca",
        str(certs / "ca.pem"),
        "--tls-cert",
        str(certs / "client.pem"),
        "--tls-key",
        str(certs / "client-key.pem"),
    ]
    result = CliRunner().invoke(app, [*args, *tls])
    assert result.exit_code == 0, result.output
    assert "MSA|AA" in result.output
    refused = CliRunner().invoke(app, [*args, *tls[:2]])  # no client certificate
    assert refused.exit_code == 2
    assert "MLLP error" in refused.output


def test_mllp_refuses_clear_and_foreign_certificate(
    broker: Runtime, certs: Path, rogue: Path
) -> None:
    port = broker.settings.mllp_port
    message = orm("NW", "TLS2", "C-TLS-2")
    with pytest.raises((MLLPError, OSError)):
        send_messages("127.0.0.1", port, [message], timeout=5)
    foreign = client_context(
        str(certs / "ca.pem"), str(rogue / "client.pem"), str(rogue / "client-key.pem")
    )
    with pytest.raises((MLLPError, OSError)):
        send_messages("127.0.0.1", port, [message], timeout=5, ssl_context=foreign)
    ack = send_messages("127.0.0.1", port, [message], timeout=30, ssl_context=_client(certs))
    assert msa(ack[0])[0] == "AA"


# ---- DICOM TLS ----------------------------------------------------------------------------
def _dcmtk_tls(certs: Path, key: str = "client-key.pem", cert: str = "client.pem") -> list[str]:
    return ["+tls", str(certs / key), str(certs / cert), "+cf", str(certs / "ca.pem")]


@pytest.mark.interop
def test_echoscu_and_findscu_over_tls(broker: Runtime, certs: Path, tmp_path: Path) -> None:
    if shutil.which("echoscu") is None:
        pytest.fail("DCMTK is not installed (scripts/install-test-deps.sh)")
    port = str(broker.settings.dicom_port)
    echo = subprocess.run(
        ["echoscu", *_dcmtk_tls(certs), "-aec", "FHIRMWL", "127.0.0.1", port],
        capture_output=True,
        timeout=60,
    )
    assert echo.returncode == 0, echo.stderr.decode()
    find = subprocess.run(
        ["findscu", "-W", *_dcmtk_tls(certs), "-aet", "CT01", "-aec", "FHIRMWL"]
        + ["-k", "ScheduledProcedureStepSequence[0].Modality=CT", "127.0.0.1", port],
        capture_output=True,
        timeout=60,
    )
    assert find.returncode == 0, find.stderr.decode()


@pytest.mark.interop
def test_dcmtk_without_or_with_foreign_certificate_refused(
    broker: Runtime, certs: Path, rogue: Path
) -> None:
    if shutil.which("echoscu") is None:
        pytest.fail("DCMTK is not installed (scripts/install-test-deps.sh)")
    port = str(broker.settings.dicom_port)
    attempts = [
        ["echoscu", "-aec", "FHIRMWL", "127.0.0.1", port],  # clear
        ["echoscu", "+tla", "+cf", str(certs / "ca.pem"), "-aec", "FHIRMWL", "127.0.0.1", port],
        ["echoscu", *_dcmtk_tls(rogue)[:3], "+cf", str(certs / "ca.pem")]
        + ["-aec", "FHIRMWL", "127.0.0.1", port],
    ]
    for args in attempts:
        result = subprocess.run(args, capture_output=True, timeout=60)
        assert result.returncode != 0, args


def test_pynetdicom_over_tls(broker: Runtime, certs: Path) -> None:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(Verification)
    port = broker.settings.dicom_port
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="FHIRMWL", tls_args=(_client(certs), "localhost")
    )
    try:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_long_c_find_answers_over_tls(
    certs: Path, dcmtk_items: list[Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS the Pending responses go through pynetdicom's DUL (one thread per TLS
    connection): two 200-item answers in one association arrive whole and in order."""

    def direct_write(self: PendingSender, data: bytes) -> None:
        raise AssertionError("a TLS socket written from the handler thread")

    monkeypatch.setattr(PendingSender, "_write", direct_write)
    items = []
    for n in range(200):
        item = copy.deepcopy(dcmtk_items[n % len(dcmtk_items)])
        item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = f"TLS{n:04d}"
        items.append(item)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(certs / "server.pem"), str(certs / "server-key.pem"))
    scp = WorklistSCP(lambda: InMemorySource(items), "FHIRMWL", "127.0.0.1", free_port(), None,
                      ssl_context=server)  # fmt: skip
    scp.start()
    try:
        ae = AE(ae_title="CT01")
        ae.add_requested_context(ModalityWorklistInformationFind)
        tls = (_client(certs, with_cert=False), "localhost")
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="FHIRMWL", tls_args=tls)
        assert assoc.is_established
        query = Dataset()
        query.ScheduledProcedureStepSequence = [Dataset()]
        query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = ""
        try:
            for _ in range(2):
                ids, final = [], None
                for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
                    if status.Status in (0xFF00, 0xFF01):
                        ids.append(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
                    else:
                        final = status.Status
                assert final == 0x0000
                assert sorted(ids) == [f"TLS{n:04d}" for n in range(200)]
        finally:
            assoc.release()
    finally:
        scp.stop()
