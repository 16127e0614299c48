"""Audit export to local syslog receivers (UDP and TCP), a repository that is down at first, and
exactly one event per acknowledged HL7 message across a kill -9 of ``fhirmwl serve``."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from fhirmwl.audit.codec import unpack_content
from fhirmwl.config import load_settings
from fhirmwl.mllp import send_messages
from fhirmwl.mllp.client import MLLPError
from fhirmwl.wiring import build_services
from tests.conftest import free_port, running_broker, serve_with_mllp
from tests.integration.mllp_service.messages import orm

RFC5424 = re.compile(rb"^<85>1 (\S+) (\S+) fhirmwl - IHE\+RFC-3881 - \xef\xbb\xbf(.*)$", re.S)


class Receiver:
    """A syslog repository on loopback: UDP datagrams or RFC 5425 octet-counted TCP."""

    def __init__(self, proto: str, port: int | None = None) -> None:
        self.proto = proto
        self.messages: list[bytes] = []
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        if proto == "tcp":
            self.sock.listen(4)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.proto == "udp":
                    self.messages.append(self.sock.recv(65535))
                    continue
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.2)
                buffer = b""
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    buffer += data
                    while b" " in buffer:
                        length, _, rest = buffer.partition(b" ")
                        if len(rest) < int(length):
                            break
                        self.messages.append(rest[: int(length)])
                        buffer = rest[int(length) :]

    def wait(self, count: int, timeout: float = 20) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _xml(message: bytes) -> ET.Element:
    match = RFC5424.match(message)
    assert match, message[:120]
    return ET.fromstring(match.group(3))


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_syslog_receives_rfc5424_with_dicom_audit_xml(tmp_path: Path, proto: str) -> None:
    receiver = Receiver(proto)
    try:
        url = f"{proto}://127.0.0.1:{receiver.port}"
        with running_broker(f"sqlite:///{tmp_path / 's.db'}", mllp=True, audit_syslog=url) as rt:
            acks = send_messages("127.0.0.1", rt.settings.mllp_port, [orm("NW", "SYS1", "SYS1")])
            assert b"MSA|AA" in acks[0]
            messages = receiver.wait(2)  # application start, then the order record
        roots = [_xml(m) for m in messages]
    finally:
        receiver.close()
    ids = [r.find("EventIdentification/EventID").get("csd-code") for r in roots]  # type: ignore[union-attr]
    assert ids[0] == "110100" and "110109" in ids
    order = roots[ids.index("110109")]
    requestor = order.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor is not None and requestor.get("UserID") == "RIS^HOSP"
    patient = order.find("ParticipantObjectIdentification[@ParticipantObjectTypeCode='1']")
    assert patient is not None and patient.get("ParticipantObjectID")


def test_repository_down_at_first_gets_everything_in_order(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'd.db'}"
    with running_broker(db, mllp=True, audit_syslog=f"tcp://127.0.0.1:{port}") as rt:
        messages = [orm("NW", f"DOWN{n}", f"DOWN{n}", pid=f"PD{n}") for n in range(5)]
        acks = send_messages("127.0.0.1", rt.settings.mllp_port, messages, timeout=30)
        assert all(b"MSA|AA" in a for a in acks)  # the doors never wait for the repository
        receiver = Receiver("tcp", port)
        try:
            got = receiver.wait(6, timeout=90)
            roots = [_xml(m) for m in got[:6]]
        finally:
            receiver.close()
    ids = [r.find("EventIdentification/EventID").get("csd-code") for r in roots]  # type: ignore[union-attr]
    assert ids == ["110100"] + ["110109"] * 5
    times = [r.find("EventIdentification").get("EventDateTime") for r in roots]  # type: ignore[union-attr]
    assert times == sorted(times)  # type: ignore[type-var]


def test_kill9_during_ingest_leaves_one_event_per_acked_message(db_url: str) -> None:
    proc, _, mllp_port = serve_with_mllp(db_url)
    acked: list[str] = []
    try:
        # The kill lands 0.2 s after the fifth acknowledgement, while messages keep coming.
        killer = threading.Timer(0.2, lambda: proc.send_signal(signal.SIGKILL))
        try:
            for n in range(2000):
                cid = f"K9M{n}"
                ack = send_messages("127.0.0.1", mllp_port, [orm("NW", cid, cid, pid=f"K{n}")])
                if b"MSA|AA" in ack[0]:
                    acked.append(cid)
                if len(acked) == 5 and not killer.ident:
                    killer.start()
        except (OSError, MLLPError):
            pass  # the broker died mid-stream
        killer.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert len(acked) >= 3, "too few messages before the kill"
    services = build_services(load_settings(None, db=db_url, audit=False))
    try:
        with services.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT content FROM audit_event WHERE category = '110109' AND outcome = '0'"
            ).fetchall()
    finally:
        services.close()
    per_message: dict[str, int] = {}
    for (stored,) in rows:
        content = unpack_content(stored) or ""
        match = re.search(r'"msh10"\},"valueString":"([^"]+)"', content)
        assert match, content
        per_message[match.group(1)] = per_message.get(match.group(1), 0) + 1
    assert all(per_message.get(cid) == 1 for cid in acked), {
        cid: per_message.get(cid) for cid in acked if per_message.get(cid) != 1
    }
    assert set(per_message) - set(acked) <= {f"K9M{len(acked)}"}  # at most the one in flight
