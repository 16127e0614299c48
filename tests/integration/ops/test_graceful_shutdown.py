"""SIGTERM while HL7 orders stream in: exit 0, and every message that got an AA is in the store.

A real ``fhirmwl serve`` process with JSON logs; four client threads each send orders over their
own MLLP connection until the listener goes away. The JSON log lines are parsed too: one object
per line, the door context present, and no patient name at INFO.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from fhirmwl.config import load_settings
from fhirmwl.mllp import send_messages
from fhirmwl.mllp.framing import Frame, FrameDecoder, frame
from fhirmwl.wiring import build_services
from tests.conftest import REPO, free_port, wait_ready
from tests.integration.mllp_service.messages import orm


def _client(port: int, prefix: str, acked: list[str], stop: threading.Event) -> None:
    decoder = FrameDecoder(max_message_bytes=1 << 24)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            n = 0
            while not stop.is_set():
                cid = f"{prefix}{n}"
                sock.sendall(frame(orm("NW", cid, cid, pid=f"P{prefix}{n}")))
                got: list[bytes] = []
                while not got:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    got = [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
                if b"MSA|AA" in got[0]:
                    acked.append(cid)
                n += 1
    except OSError:
        return


def _client_once(port: int, acked: list[str]) -> None:
    ack = send_messages("127.0.0.1", port, [orm("NW", "FIRST", "FIRST")], timeout=60)[0]
    assert b"MSA|AA" in ack, ack
    acked.append("FIRST")


def test_sigterm_during_ingest_keeps_every_acked_message(db_url: str, tmp_path: Path) -> None:
    http_port, mllp_port = free_port(), free_port()
    log_file = tmp_path / "serve.log"
    with open(log_file, "wb") as log_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fhirmwl.cli", "serve", "--no-dicom", "--db", db_url]
            + ["--http-port", str(http_port), "--mllp-port", str(mllp_port)]
            + ["--log-format", "json", "--log-level", "info"],
            stdout=log_out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=dict(os.environ),
        )
    try:
        deadline = time.monotonic() + 60  # start-up and the first 20 ACKs share this minute
        if not wait_ready(f"http://127.0.0.1:{http_port}/readyz", deadline - time.monotonic()):
            raise AssertionError("serve did not become ready: " + log_file.read_text())
        acked: list[str] = []
        stop = threading.Event()
        # One order first, so the shared practitioners exist before the clients race.
        _client_once(mllp_port, acked)
        clients = [
            threading.Thread(target=_client, args=(mllp_port, f"G{i}X", acked, stop))
            for i in range(4)
        ]
        for c in clients:
            c.start()
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= 20, "no traffic flowed"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        stop.set()
        for c in clients:
            c.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log_file.read_text()

    services = build_services(load_settings(None, db=db_url))
    try:
        with services.store.read() as tx:
            applied = {
                r[0]
                for r in tx.conn.execute(
                    "SELECT control_id FROM v2_message_log WHERE status = 'applied'"
                ).fetchall()
            }
    finally:
        services.close()
    missing = sorted(set(acked) - applied)
    assert not missing, f"{len(missing)} acknowledged message(s) lost: {missing[:5]}"

    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "no JSON log lines"
    assert len(records) == len([line for line in lines if not line.startswith("fhirmwl:")])
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    info = [r for r in records if r["level"] == "info"]
    assert not any("DOE" in json.dumps(r) or "JANE" in json.dumps(r) for r in info)
