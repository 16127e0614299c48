"""Outbound HL7 v2 over TLS to a real MLLP receiver on loopback (development certificates).

The broker verifies the receiver's certificate against ``tls_ca`` and its name against ``host``
and presents its own client certificate (mutual TLS); a receiver whose certificate comes from
another CA gets nothing, the refusal is in the outbound log, and once the receiver has the right
certificate every held message arrives, in order.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest

from fhirmwl.errors import BadRequest
from fhirmwl.outbound.config import parse_destinations
from fhirmwl.runtime import Runtime
from fhirmwl.security.devcerts import write_dev_certs
from fhirmwl.security.tls import server_context
from tests.conftest import running_broker
from tests.integration.orders.conftest import order_bundle
from tests.integration.outbound.conftest import Receiver, orc, segment


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the development PKI, a rogue PKI of another CA)."""
    good, rogue = tmp_path_factory.mktemp("pki"), tmp_path_factory.mktemp("rogue")
    write_dev_certs(good, client_cn="fhirmwl-broker")
    write_dev_certs(rogue)
    return good, rogue


def _receiver(certs: Path, client_ca: Path, port: int | None = None) -> Receiver:
    ctx = server_context(
        str(certs / "server.pem"), str(certs / "server-key.pem"), str(client_ca), True
    )
    deadline = time.monotonic() + 10
    while True:  # the stopped receiver's listening socket closes once its accept poll returns
        try:
            return Receiver(port=port, tls=ctx).start()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _out_log(runtime: Runtime) -> list[tuple[str, str, int, str]]:
    with runtime.services.store.read() as tx:
        rows = tx.conn.execute(
            "SELECT status, COALESCE(error, ''), attempts, event FROM hl7_out_log ORDER BY event_no"
        ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]


def test_tls_delivery_refused_certificate_then_fixed(
    db_url: str, catalogue_file: Path, pki: tuple[Path, Path]
) -> None:
    good, rogue = pki
    wrong = _receiver(rogue, good / "ca.pem")  # accepts our client cert; its own is from rogue
    dest = {
        "name": "pacs",
        "host": "127.0.0.1",
        "port": wrong.port,
        "tls": True,
        "tls_ca": str(good / "ca.pem"),
        "tls_cert": str(good / "client.pem"),
        "tls_key": str(good / "client-key.pem"),
    }
    try:
        with running_broker(db_url, catalogue=str(catalogue_file), hl7_destinations=[dest]) as rt:
            with httpx.Client(base_url=rt.settings.fhir_base, timeout=30) as api:
                created = api.post("/$create-order", json=order_bundle())
                assert created.status_code == 201, created.text
                isr_id = created.headers["X-Order-Id"]
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not any(r[2] for r in _out_log(rt)):
                    time.sleep(0.1)
                [(status, error, attempts, _)] = _out_log(rt)
                assert status == "pending" and attempts >= 1
                assert "CERTIFICATE_VERIFY_FAILED" in error
                assert wrong.received == []
                wrong.stop()
                assert api.post(f"/ServiceRequest/{isr_id}/$cancel-order").status_code == 200
                right = _receiver(good, good / "ca.pem", port=dest["port"])
                try:
                    got = right.wait_for(2, timeout=40)
                finally:
                    right.stop()
            log = _out_log(rt)
    finally:
        wrong.stop()
    assert [orc(m)[0] for m in got] == [("NW", "SC"), ("CA", "CA")]
    assert segment(got[0], "ORC")[2] == segment(got[1], "ORC")[2]
    assert set(right.peers) == {"fhirmwl-broker"}  # mutual TLS: our client certificate
    assert [(s, e) for s, _, _, e in log] == [
        ("accepted", "procedure-scheduled"),
        ("accepted", "procedure-cancelled"),
    ]


def test_tls_settings_are_checked_at_start_up(tmp_path: Path, pki: tuple[Path, Path]) -> None:
    good, _ = pki
    with pytest.raises(BadRequest, match="need tls = true"):
        parse_destinations([{"name": "x", "host": "h", "tls_ca": str(good / "ca.pem")}])
    with pytest.raises(BadRequest, match="tls_key needs tls_cert"):
        parse_destinations([{"name": "x", "host": "h", "tls": True, "tls_key": "k.pem"}])
    [missing] = parse_destinations(
        [{"name": "x", "host": "h", "tls": True, "tls_ca": str(tmp_path / "none.pem")}]
    )
    with pytest.raises(BadRequest, match="cannot load TLS"):
        missing.tls_context()
    [system] = parse_destinations([{"name": "x", "host": "h", "tls": True}])
    ctx = system.tls_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with (
        pytest.raises(BadRequest, match="cannot load TLS"),
        running_broker(
            f"sqlite:///{tmp_path / 'b.db'}",
            hl7_destinations=[{"name": "x", "host": "h", "tls": True, "tls_cert": "nope.pem"}],
        ),
    ):
        pass
