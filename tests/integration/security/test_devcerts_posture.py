"""``fhirmwl dev-certs``, the secure-defaults check of ``serve``, per-listener TLS overrides and
the client certificate subject as the MLLP peer identity."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from typer.testing import CliRunner

from fhirmwl.cli import app
from fhirmwl.config import load_settings
from fhirmwl.mllp import MLLPClient, MLLPServer, PeerInfo, send_messages
from fhirmwl.security.devcerts import FILES
from fhirmwl.security.posture import security_posture, startup_problems
from fhirmwl.security.tls import client_context, server_context
from tests.conftest import running_broker
from tests.integration.mllp_service.messages import msa, orm
from tests.integration.security.conftest import tls_settings


def test_dev_certs_command(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = CliRunner().invoke(app, ["dev-certs", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    server = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert stat.S_IMODE((out / "server-key.pem").stat().st_mode) == 0o600
    if shutil.which("openssl"):
        check = subprocess.run(
            ["openssl", "verify", "-CAfile", str(out / "ca.pem")]
            + [str(out / "server.pem"), str(out / "client.pem")],
            capture_output=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_serve_refuses_exposed_clear_unauthenticated(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--db", db])
    assert result.exit_code == 2
    assert "refusing to start" in result.output
    assert "--tls-cert" in result.output and "--insecure" in result.output


def test_posture_rules(certs: Path) -> None:
    assert startup_problems(load_settings(None, host="127.0.0.1")) == []
    assert startup_problems(load_settings(None, host="localhost")) == []
    exposed = load_settings(None, host="0.0.0.0")
    assert len(startup_problems(exposed)) == 4  # HTTP, MLLP, DICOM and the advice
    assert startup_problems(load_settings(None, host="0.0.0.0", insecure=True)) == []
    tls = load_settings(None, host="0.0.0.0", **tls_settings(certs))
    assert startup_problems(tls) == []
    clear_mllp = load_settings(None, host="10.1.2.3", mllp_tls=False, **tls_settings(certs))
    problems = startup_problems(clear_mllp)
    assert len(problems) == 2 and "MLLP" in problems[0]
    # bearer-token settings of the OAuth feature count as HTTP authentication
    http_only = load_settings(None, host="0.0.0.0", mllp=False, dicom=False)
    assert [p.name for p in security_posture(http_only) if not p.safe] == ["http"]
    http_only.auth_jwks = "/etc/fhirmwl/jwks.json"  # type: ignore[attr-defined]
    assert startup_problems(http_only) == []


def test_dicom_peer_rules_count_as_authentication_only_when_bound() -> None:
    dicom_only = load_settings(None, host="0.0.0.0", http=False, mllp=False)
    dicom_only.extra["dicom_peers"] = [{"ae_title": "CT01"}]  # a title alone
    assert startup_problems(dicom_only) != []
    dicom_only.extra["dicom_peers"] = [{"ae_title": "CT01", "hosts": ["10.0.0.0/8"]}]
    assert startup_problems(dicom_only) == []


def test_per_listener_switches_from_env_and_command_line(
    monkeypatch: pytest.MonkeyPatch, certs: Path
) -> None:
    monkeypatch.setenv("FHIRMWL_MLLP_TLS", "off")
    settings = load_settings(None, dicom_tls="off", **tls_settings(certs))
    assert (settings.http_tls, settings.mllp_tls, settings.dicom_tls) == (True, False, False)
    assert settings.fhir_base.startswith("https://")


def test_one_listener_in_clear(tmp_path: Path, certs: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mixed.db'}"
    with running_broker(db, mllp=True, mllp_tls=False, **tls_settings(certs)) as runtime:
        ack = send_messages("127.0.0.1", runtime.settings.mllp_port, [orm("NW", "CLR1", "C1")])
        assert msa(ack[0])[0] == "AA"
        ca = client_context(str(certs / "ca.pem"))
        response = httpx.get(f"{runtime.settings.fhir_base}/metadata", verify=ca, timeout=10)
        assert response.status_code == 200


def test_mllp_peer_identity_is_the_certificate_subject(certs: Path) -> None:
    seen: list[PeerInfo] = []

    async def handler(payload: bytes, peer: PeerInfo) -> bytes:
        seen.append(peer)
        return b"MSH|^~\\&|B|B|A|A|20250101||ACK|1|P|2.5\rMSA|AA|1\r"

    async def run() -> None:
        ctx = server_context(
            str(certs / "server.pem"), str(certs / "server-key.pem"), str(certs / "ca.pem")
        )
        async with MLLPServer(handler, "127.0.0.1", 0, ssl=ctx) as server:
            client = client_context(
                str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
            )
            async with MLLPClient("127.0.0.1", server.port, 10, ssl=client) as c:
                await c.send(b"MSH|^~\\&|A|A|B|B|20250101||ADT^A01|1|P|2.5\r")
            # optional client certificate (no tls_require_client_cert): anonymous TLS is served
            anonymous = client_context(str(certs / "ca.pem"))
            async with MLLPClient("127.0.0.1", server.port, 10, ssl=anonymous) as c:
                await c.send(b"MSH|^~\\&|A|A|B|B|20250101||ADT^A01|2|P|2.5\r")

    asyncio.run(run())
    assert [p.tls_subject for p in seen] == ["CN=ct01", None]


def test_serve_reports_unloadable_tls_settings(tmp_path: Path, certs: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    cert = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server-key.pem")]
    for extra, words in (
        (["--tls-require-client-cert"], "needs tls_client_ca"),
        (["--tls-client-ca", str(tmp_path / "missing.pem")], "cannot load"),
    ):
        result = CliRunner().invoke(app, ["serve", "--db", db, *cert, *extra])
        assert result.exit_code == 2
        assert "refusing to start" in result.output and words in result.output


def test_require_client_cert_needs_a_ca(certs: Path) -> None:
    from fhirmwl.errors import BadRequest

    with pytest.raises(BadRequest, match="tls_client_ca"):
        server_context(str(certs / "server.pem"), str(certs / "server-key.pem"), "", True)
