"""The real serve runtime over MLLP: every corpus message gets its expected ACK; split frames,
two frames in one packet, an oversized frame, 50 concurrent senders; PostgreSQL once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fhirmwl.mllp import FrameDecoder, frame, send_messages
from fhirmwl.mllp.framing import Frame
from fhirmwl.runtime import Runtime
from tests.integration.mllp_service.conftest import start_runtime
from tests.integration.mllp_service.messages import msa, orm
from tests.unit.mapping_v2.test_v2_corpus import EXPECTED_ACK

# Where the service answers differently from the pure mapping (tests/unit/mapping_v2): the
# store's profile validation refuses values a DICOM worklist cannot carry, and the order
# service reports values it replaced as ERR severity W in an AA (docs/hl7v2.md).
SERVICE_ACK: dict[str, tuple[str, str | None]] = {
    **EXPECTED_ACK,
    # ERR 102 at the field: OBR^1^20 / IPC^1^9 (tests/integration/pipeline)
    "dcm4che_OMG-O19-Eyecare.hl7": ("AE", "102"),  # SPS ID of 19 characters (SH: 16)
    "dcm4che_OMI-O23-ImagingOrder.hl7": ("AE", "102"),  # station AE title over 16 characters
    "dcm4che_ORM-O01-GeneralOrder_mislabeled-OMI.hl7": ("AE", "102"),  # SPS ID of 19 chars
    # a modality outside CID 33 does not refuse the order: OT is used, ERR 103 severity W
    "hapi_ORM-O01_v22_NW_CT-biopsy.hl7": ("AA", "103"),  # modality A999
    "hapi_ORM-O01_v22_XR_change-order_knee.hl7": ("AA", "103"),  # modality B999
}


def _answer(ack: bytes) -> tuple[str, str]:
    """MSA-1 and the ERR-3 code of the first ERR; for an AA only a table value (103) warning
    is asked for (messages without OBR-24 or a start time get 101 W warnings too)."""
    code, err = msa(ack)
    if code == "AA" and err != "103":
        return code, ""
    return code, err


def _replies(sock: socket.socket, n: int) -> list[bytes]:
    decoder, got = FrameDecoder(1 << 24), []
    while len(got) < n:
        data = sock.recv(1 << 16)
        assert data, "connection closed early"
        got += [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
    return got


def test_every_corpus_message_gets_its_service_ack(server: Runtime, corpus: Path) -> None:
    files = sorted((corpus / "hl7").glob("*.hl7"))
    assert files
    acks = send_messages("127.0.0.1", server.settings.mllp_port, [f.read_bytes() for f in files])
    for path, ack in zip(files, acks, strict=True):
        code, err = SERVICE_ACK.get(path.name, ("AA", None))
        assert _answer(ack) == (code, err or ""), (path.name, ack[:300])
        if code == "AA" and b"|W|" in ack:
            assert b"accepted with" in ack, path.name
    assert server.listeners and all(listener.name for listener in server.listeners)


def test_split_frames_and_two_frames_per_packet(server: Runtime) -> None:
    one, two, three = (frame(orm("NW", f"S{i}", f"S{i}")) for i in range(3))
    with socket.create_connection(("127.0.0.1", server.settings.mllp_port), 10) as sock:
        for cut in (1, 7, len(one) - 2):  # start block alone, mid-MSH, end block split
            sock.sendall(one[:cut])
            time.sleep(0.05)
            sock.sendall(one[cut:])
            (ack,) = _replies(sock, 1)
            assert msa(ack)[0] == "AA"
        sock.sendall(two + three)
        assert [msa(a)[0] for a in _replies(sock, 2)] == ["AA", "AA"]


def test_oversized_frame_is_refused_and_connection_survives(tmp_path: Path) -> None:
    runtime = start_runtime(f"sqlite:///{tmp_path / 'o.db'}", mllp_max_message_bytes=2000)
    try:
        big = orm("NW", "BIG", "B1").replace(b"CT Abdomen", b"X" * 5000)
        port = runtime.settings.mllp_port
        refused, ok = send_messages("127.0.0.1", port, [big, orm("NW", "SMALL", "B2")])
        assert msa(refused) == ("AR", "207") and msa(ok) == ("AA", "")
    finally:
        runtime.stop()


def test_fifty_concurrent_senders(server: Runtime) -> None:
    results: dict[int, list[bytes]] = {}

    def sender(k: int) -> None:
        msgs = [orm("NW", f"K{k}N{j}", f"K{k}N{j}", pid=f"PK{k}") for j in range(4)]
        results[k] = send_messages("127.0.0.1", server.settings.mllp_port, msgs, timeout=120)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(results) == 50
    assert all(msa(a)[0] == "AA" for acks in results.values() for a in acks)
    with server.services.store.read() as tx:
        n = tx.conn.execute("SELECT COUNT(*) FROM resource WHERE res_type = 'Task'").fetchone()[0]
    assert n == 200


@pytest.mark.postgres
def test_postgres_lifecycle_and_retransmission(pg_url: str) -> None:
    runtime = start_runtime(pg_url)
    send: Callable[[list[bytes]], list[bytes]] = lambda m: send_messages(  # noqa: E731
        "127.0.0.1", runtime.settings.mllp_port, m
    )
    try:
        nw = orm("NW", "PG1", "G1")
        acks = send(
            [
                nw,
                nw,
                orm("XO", "PG1", "G2", msh7="20250101121000"),
                orm("CA", "PG1", "G3", msh7="20250101122000"),
            ]
        )
        assert [msa(a)[0] for a in acks] == ["AA", "AA", "AA", "AA"] and acks[0] == acks[1]
        (late,) = send([orm("XO", "PG1", "G4", msh7="20250101123000")])
        assert msa(late) == ("AE", "207")
        with runtime.services.store.read() as tx:
            statuses = [r[0] for r in tx.conn.execute(
                "SELECT status FROM v2_message_log ORDER BY id"
            ).fetchall()]  # fmt: skip
        assert statuses == ["applied", "duplicate", "applied", "applied", "refused"]
    finally:
        runtime.stop()
