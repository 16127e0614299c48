"""DICOM access: called-AE check, ``[[dicom_peers]]`` bound to addresses and certificates, the
own-station restriction, and idle sockets that can no longer lock modalities out."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification

from fhirmwl.config import load_settings
from fhirmwl.dicom.admission import AssociationLimits
from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP
from fhirmwl.security.tls import client_context
from fhirmwl.services.worklist.listener import DicomListener, access_policy
from fhirmwl.worklist import InMemorySource
from tests.conftest import free_port, running_broker
from tests.integration.security.conftest import tls_settings

PEERS_TOML = """\
[[dicom_peers]]
ae_title = "CT01"
hosts = ["127.0.0.1"]
cert_subject = "CN=ct01"
"""


def _associate(
    port: int,
    calling: str = "CT01",
    called: str = "FHIRMWL",
    source: str = "127.0.0.1",
    tls: Any = None,
) -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(ModalityWorklistInformationFind)
    return ae.associate("127.0.0.1", port, ae_title=called, bind_address=(source, 0), tls_args=tls)


def _rejection(assoc: Any) -> tuple[int, int, int]:
    assert assoc.is_rejected
    p = assoc.acceptor.primitive
    return int(p.result), int(p.result_source), int(p.diagnostic)


def _echo_ok(port: int, **kwargs: Any) -> None:
    assoc = _associate(port, **kwargs)
    try:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    with running_broker(
        f"sqlite:///{tmp_path / 'd.db'}",
        dicom=True,
        dicom_artim_timeout=2,
        dicom_max_associations_per_peer=3,
    ) as runtime:
        yield runtime


def test_called_ae_check(broker: Any) -> None:
    port = broker.settings.dicom_port
    assert _rejection(_associate(port, called="ANY-SCP")) == (1, 1, 7)
    if shutil.which("echoscu"):
        out = subprocess.run(
            ["echoscu", "-aec", "NOTUS", "127.0.0.1", str(port)], capture_output=True, timeout=60
        )
        assert out.returncode != 0
        assert b"Called AE Title Not Recognized" in out.stdout + out.stderr
    _echo_ok(port)


def test_idle_sockets_cannot_lock_modalities_out(
    broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = broker.settings.dicom_port
    flood = ("127.0.0.2", 0)
    idle = [socket.create_connection(("127.0.0.1", port), 10, flood) for _ in range(40)]
    try:
        _echo_ok(port)  # another address is still served while 40 sockets sit idle
        start = time.monotonic()
        for s in idle:  # refused at once beyond the cap of 3, or closed by ARTIM (2 s)
            s.settimeout(20)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1) == b""
        assert time.monotonic() - start < 20
        refusals = [r for r in caplog.records if "dicom_max_associations_per_peer" in r.message]
        assert len(refusals) >= 30
        _echo_ok(port, source="127.0.0.2")  # and that address may associate again
    finally:
        for s in idle:
            s.close()


def test_peer_rules_bind_titles_to_hosts(tmp_path: Path) -> None:
    config = tmp_path / "fhirmwl.toml"
    config.write_text(PEERS_TOML.replace('cert_subject = "CN=ct01"\n', ""))
    settings = load_settings(config, host="127.0.0.1", dicom_port=free_port())
    listener = DicomListener(_Services(settings))
    listener.start()
    try:
        port = listener.scp.port
        _echo_ok(port)
        assert _rejection(_associate(port, source="127.0.0.2")) == (1, 1, 3)  # right title
        assert _rejection(_associate(port, calling="MR01")) == (1, 1, 3)
    finally:
        listener.stop()


def test_peer_rules_bind_titles_to_certificates(
    tmp_path: Path, certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fhirmwl.dicom.admission")
    config = tmp_path / "fhirmwl.toml"
    config.write_text(PEERS_TOML)  # the TOML example of docs/security.md
    settings = load_settings(config, dicom_port=free_port(), **tls_settings(certs))
    assert access_policy(settings).peers[0].cert_subject == "CN=ct01"
    listener = DicomListener(_Services(settings))
    listener.start()
    try:
        port = listener.scp.port
        mutual = client_context(
            str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client-key.pem")
        )
        _echo_ok(port, tls=(mutual, "localhost"))
        assert any("client certificate CN=ct01" in r.message for r in caplog.records)
        anonymous = client_context(str(certs / "ca.pem"))  # no client certificate
        assert _rejection(_associate(port, tls=(anonymous, "localhost"))) == (1, 1, 3)
    finally:
        listener.stop()


class _Services:
    """What ``DicomListener`` reads: settings and a store (unused without C-FIND)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.store = None
        self.dicom_extensions: list[Any] = []
        self.door_wrappers: dict[str, list[Any]] = {}


def _query(station: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.Modality = ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _stations(port: int, calling: str, station: str) -> list[str]:
    assoc = _associate(port, calling=calling)
    found = []
    try:
        for status, ds in assoc.send_c_find(_query(station), ModalityWorklistInformationFind):
            if status and status.Status in (0xFF00, 0xFF01):
                value = ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
                found.append(value if isinstance(value, str) else "\\".join(value))
    finally:
        assoc.release()
    return found


def test_station_restriction_holds_when_another_station_is_named(
    dcmtk_items: list[Dataset],
) -> None:
    scp = WorklistSCP(
        lambda: InMemorySource(dcmtk_items),
        "FHIRMWL",
        "127.0.0.1",
        free_port(),
        AccessPolicy(restrict_to_own_station=True),
    )
    scp.start()
    try:
        own = ["AB45", "AB45\\DD56"]
        assert sorted(_stations(scp.port, "AB45", "")) == own
        assert _stations(scp.port, "AB45", "AA32") == []  # names another station
        assert _stations(scp.port, "AB45", "DD56") == []  # even one sharing an item
        assert sorted(_stations(scp.port, "AB45", "A*")) == own  # narrowed to its own
        assert sorted(_stations(scp.port, "AA32", "AA32")) == ["AA32", "AA32\\AA33"]
    finally:
        scp.stop()


def test_total_association_cap_rejects_with_local_limit_exceeded() -> None:
    scp = WorklistSCP(
        lambda: InMemorySource([]),
        "FHIRMWL",
        "127.0.0.1",
        free_port(),
        limits=AssociationLimits(max_associations=2),
    )
    scp.start()
    held = [_associate(scp.port), _associate(scp.port, source="127.0.0.2")]
    try:
        assert all(a.is_established for a in held)
        assert _rejection(_associate(scp.port, source="127.0.0.3")) == (2, 3, 2)
    finally:
        for a in held:
            a.release()
        scp.stop()
    assert not any(a.is_established for a in held)
