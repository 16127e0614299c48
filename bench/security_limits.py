"""The exhaustion attacks of issue 12 against a real ``fhirmwl serve`` (SQLite, default limits).

For each attack: how the broker answers it, and whether a normal client is served meanwhile.
  1. a 50 MB FHIR body                      -> 413 before it is parsed; database growth
  2. a 10,000-entry transaction             -> 413; time to answer
  3. 40 idle TCP sockets on the DICOM port  -> C-ECHO from another address meanwhile
  4. 150 MLLP connections, 1 MB half frames -> how many are kept; server RSS; an ACK meanwhile
Prints figures; asserts nothing.

    python bench/security_limits.py
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import time
from pathlib import Path

from _common import Client, Server, free_port
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from fhirmwl.mllp import send_messages

ORM = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||ORM^O01|C{n}|P|2.3.1\r"
    "PID|||PAT{n}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "ORC|NW|PLC{n}^RIS|||SC||^^^20250102090000^^R||20250101115500\r"
    "OBR|1|PLC{n}^RIS||CTABD^CT Abdomen^LOCAL|||||||||||||||ACC{n}|RP{n}|SPS{n}||||CT\r"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def echo(port: int, source: str = "127.0.0.1") -> tuple[bool, float]:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(Verification)
    start = time.perf_counter()
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL", bind_address=(source, 0))
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    if assoc.is_established:
        assoc.release()
    return ok, time.perf_counter() - start


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fhirmwl-sec-"))
    db_file = tmp / "sec.db"
    dicom_port, mllp_port = free_port(), free_port()
    server = Server(
        f"sqlite:///{db_file}", "--dicom-port", str(dicom_port), "--mllp-port", str(mllp_port)
    )
    try:
        client = Client(server.port)
        size = db_file.stat().st_size
        body = json.dumps(
            {"resourceType": "Patient", "name": [{"text": "x" * (50 << 20)}]}
        ).encode()
        start = time.perf_counter()
        status, _ = client.request("POST", "/fhir/Patient", raw=body)
        took = time.perf_counter() - start
        grown = (db_file.stat().st_size - size) / 1024
        print(f"50 MB body: HTTP {status} in {took:.2f} s; database grew {grown:.0f} KiB")

        entry = {
            "resource": {"resourceType": "Patient", "name": [{"family": "Doe"}]},
            "request": {"method": "POST", "url": "Patient"},
        }
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 10_000}
        start = time.perf_counter()
        status, _ = client.request("POST", "/fhir", bundle)
        print(f"10,000-entry transaction: HTTP {status} in {time.perf_counter() - start:.2f} s")

        idle = [
            socket.create_connection(("127.0.0.1", dicom_port), 10, ("127.0.0.2", 0))
            for _ in range(40)
        ]
        time.sleep(0.5)
        ok, took = echo(dicom_port)
        print(f"40 idle DICOM sockets from 127.0.0.2: C-ECHO from 127.0.0.1 ok={ok}", end=" ")
        print(f"in {took * 1000:.0f} ms")
        start = time.perf_counter()
        for s in idle:
            s.settimeout(30)
            with contextlib.suppress(OSError):
                s.recv(1)
        print(f"  all 40 closed by the broker after {time.perf_counter() - start:.1f} s")
        for s in idle:
            s.close()

        start = time.perf_counter()
        send_messages("127.0.0.1", mllp_port, [ORM.format(n=1).encode()], timeout=30)
        baseline = time.perf_counter() - start
        before = rss_mb(server.proc.pid)
        flood = []
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", mllp_port), 10, ("127.0.0.2", 0))
            with contextlib.suppress(OSError):
                s.sendall(b"\x0bMSH|^~\\&|FLOOD|" + b"x" * ((1 << 20) - 64))
            flood.append(s)
        time.sleep(1.0)
        alive = 0
        for s in flood:
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        after = rss_mb(server.proc.pid)
        start = time.perf_counter()
        ack = send_messages("127.0.0.1", mllp_port, [ORM.format(n=2).encode()], timeout=30)[0]
        took = time.perf_counter() - start
        msa = next(seg for seg in ack.split(b"\r") if seg.startswith(b"MSA")).decode()
        print(
            f"150 MLLP connections with 1 MB half frames from 127.0.0.2: {alive} kept; "
            f"RSS {before:.0f} -> {after:.0f} MB; ACK to 127.0.0.1 {msa[:6]} "
            f"in {took * 1000:.0f} ms (before the flood: {baseline * 1000:.0f} ms)"
        )
        for s in flood:
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
