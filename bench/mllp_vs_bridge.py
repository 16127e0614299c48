"""fhirmwl against hl7v2-fhir-bridge: the same OMI^O23 messages over one MLLP connection.

hl7v2-fhir-bridge (a separate project, MIT) maps each v2 message to a FHIR R4 transaction
Bundle, validates it with the fhir.resources models, de-duplicates by MSH-10 and content hash in
memory, and, run without a FHIR server (``serve --out DIR``), writes each Bundle to a JSON file
(no fsync) before its ACK. fhirmwl maps, completes the order (accession, Requested Procedure,
study UID, step), validates, writes the FHIR resources, the search index, the worklist item and
the message log in one SQLite (WAL) transaction, and ACKs after the commit. So the comparison is
not like for like: the bridge stores far less and keeps no state across a restart; it is the
fast reference the issue names.

The bridge is installed from the package index with pip into its own virtual environment
(``--venv``, default ``bench/.venv-bridge``, git-ignored; created on first use, reused later), so
its pinned dependencies (fhir.resources 8.3 for R4) never touch fhirmwl's. Both servers run as
their own processes on loopback; the script sends the same N messages to each, one connection,
no pacing, and prints messages/s, ACK latency, the number of non-AA answers and the ratio. The
two runs alternate ``--rounds`` times so a change of machine load hits both. Asserts nothing.

    python bench/mllp_vs_bridge.py --n 2000
    python bench/mllp_vs_bridge.py --n 2000 --rounds 2 --venv /tmp/bridge-venv
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from _common import REPO, Server, free_port, summary_ms
from mllp_ingest import OMI, _wait_port

from fhirmwl.mllp import MLLPClient

BRIDGE = "hl7v2-fhir-bridge==0.1.0"


def omi(n: int) -> bytes:
    return OMI.format(n=n, p=n % 1000).encode()


def bridge_command(venv_dir: Path) -> Path:
    """The bridge's console script, installing it into ``venv_dir`` first when needed."""
    script = venv_dir / "bin" / "hl7v2-fhir-bridge"
    if script.exists():
        return script
    print(f"installing {BRIDGE} into {venv_dir} …", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, BRIDGE], check=True)
    if not script.exists():
        raise RuntimeError(f"{BRIDGE} installed no hl7v2-fhir-bridge command in {venv_dir}")
    return script


async def send_all(port: int, first: int, n: int) -> tuple[float, list[float], int]:
    lat: list[float] = []
    errors = 0
    async with MLLPClient("127.0.0.1", port, timeout=60) as client:
        start = time.perf_counter()
        for k in range(first, first + n):
            t = time.perf_counter()
            ack = await client.send(omi(k))
            lat.append(time.perf_counter() - t)
            errors += b"MSA|AA|" not in ack
        elapsed = time.perf_counter() - start
    return n / elapsed, lat, errors


def run_bridge(script: Path, n: int, first: int, tmp: Path) -> tuple[float, list[float], int]:
    port = free_port()
    out = tmp / f"bundles-{first}"
    log = (tmp / f"bridge-{first}.log").open("wb")
    proc = subprocess.Popen(
        [str(script), "serve", "--host", "127.0.0.1", "--port", str(port), "--out", str(out)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    try:
        _wait_port(port)
        asyncio.run(send_all(port, first, 5))  # warm up (imports, first validation)
        return asyncio.run(send_all(port, first + 5, n))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def run_fhirmwl(n: int, first: int, tmp: Path) -> tuple[float, list[float], int]:
    mllp_port = free_port()
    server = Server(
        f"sqlite:///{tmp}/fhirmwl-{first}.db", "--mllp-port", str(mllp_port), "--no-dicom"
    )
    try:
        _wait_port(mllp_port)
        asyncio.run(send_all(mllp_port, first, 5))
        return asyncio.run(send_all(mllp_port, first + 5, n))
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--venv", type=Path, default=REPO / "bench" / ".venv-bridge")
    args = ap.parse_args()
    script = bridge_command(args.venv)
    load = os.getloadavg()[0]
    print(f"{args.n} OMI^O23 messages, one connection, load average {load:.1f}", flush=True)
    ours_all, theirs_all = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(args.rounds):
            first = 1 + r * (args.n + 10) * 2
            rate, lat, err = run_bridge(script, args.n, first, tmp)
            theirs_all.append(rate)
            print(f"hl7v2-fhir-bridge: {rate:7.0f} msg/s  ACK {summary_ms(lat)}  not-AA {err}")
            rate, lat, err = run_fhirmwl(args.n, first + args.n + 10, tmp)
            ours_all.append(rate)
            print(f"fhirmwl (SQLite) : {rate:7.0f} msg/s  ACK {summary_ms(lat)}  not-AA {err}")
    ours, theirs = max(ours_all), max(theirs_all)
    print(f"ratio fhirmwl / hl7v2-fhir-bridge: {ours / theirs:.2f} (best of {args.rounds} each)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
