"""Benchmark HL7 v2 ingest over MLLP: messages/s and ACK latency, 1 and 8 connections
(``--conns 1,4`` for others; ``--rate 0`` skips the paced run).

Two targets:
  --target inproc   an in-process MLLPServer whose handler is the pure intake
                    (decode, parse, map, build ACK; no store): the transport + mapping ceiling.
  --target serve    `python -m fhirmwl.cli serve --no-dicom` in its own process with the MLLP
                    listener (services.ingest_v2: ACK after commit), on SQLite or PostgreSQL.

Each message is a distinct new order (own placer number, accession and SPS), alternating ORM^O01
and OMI^O23. A paced run at --rate messages/s reports the ACK latency under a steady load.
Prints figures; asserts nothing.

    python bench/mllp_ingest.py --target inproc --n 4000
    python bench/mllp_ingest.py --target serve --backend sqlite --n 4000
    python bench/mllp_ingest.py --target serve --backend postgres --pg postgresql://…/db --n 4000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator

from _common import Server, free_port, summary_ms

from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import MLLPClient, MLLPServer, PeerInfo

ORM = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||ORM^O01|C{n}|P|2.3.1\r"
    "PID|||PAT{p}^^^HOSP^MR||DOE^JANE^{n}||19800101|F\r"
    "PV1||O|RAD^^^HOSP|||||REF01^SMITH^JOHN|||||||||||VIS{p}^^^HOSP\r"
    "ORC|NW|PLC{n}^RIS|||SC||^^^20250102090000^^R||20250101115500|||ORD01^JONES^AMY\r"
    "OBR|1|PLC{n}^RIS||CTABD^CT Abdomen^LOCAL^P1^CT abdomen^LOCAL||||||||||||ORD01^JONES^AMY"
    "||ACC{n}|RP{n}|SPS{n}||||CT\r"
    "ZDS|1.2.826.0.1.3680043.10.999.{n}^BROKER^Application^DICOM\r"
)
OMI = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||OMI^O23^OMI_O23|C{n}|P|2.5.1\r"
    "PID|||PAT{p}^^^HOSP^MR||DOE^JANE^{n}||19800101|F\r"
    "PV1||O||||||REF01^SMITH^JOHN|||||||||||VIS{p}^^^HOSP\r"
    "ORC|NW|PLC{n}^RIS|||SC||||20250101115500|||ORD01^JONES^AMY\r"
    "TQ1|1||||||20250102090000||R\r"
    "OBR|1|PLC{n}^RIS||MRHEAD^MR Head^LOCAL\r"
    "IPC|ACC{n}^HOSP|RP{n}|1.2.826.0.1.3680043.10.998.{n}|SPS{n}|MR|P2^MR head^LOCAL|MR1||MR1_AE\r"
)


def message(n: int) -> bytes:
    return (ORM if n % 2 else OMI).format(n=n, p=n % 1000).encode()


async def _sender(port: int, ids: list[int], lat: list[float], rate: float | None) -> int:
    errors = 0
    async with MLLPClient("127.0.0.1", port, timeout=60) as client:
        start = time.perf_counter()
        for k, n in enumerate(ids):
            if rate:
                await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            t = time.perf_counter()
            ack = await client.send(message(n))
            lat.append(time.perf_counter() - t)
            errors += b"MSA|AA|" not in ack
    return errors


async def run(
    port: int,
    first: int,
    n: int,
    conns: int,
    rate: float | None = None,
    server: Server | None = None,
) -> float:
    lat: list[float] = []
    cpu0 = server.cpu_seconds() if server else None
    ids = list(range(first, first + n))
    chunks = [ids[i::conns] for i in range(conns)]
    per_conn = rate / conns if rate else None
    t = time.perf_counter()
    errors = sum(await asyncio.gather(*(_sender(port, c, lat, per_conn) for c in chunks)))
    dt = time.perf_counter() - t
    label = f"{conns} conn" + (f" paced {rate:.0f}/s" if rate else "")
    cpu1 = server.cpu_seconds() if server else None
    cpu = ""
    if cpu0 is not None and cpu1 is not None:
        cpu = f"  server CPU {(cpu1 - cpu0) / n * 1000:.1f} ms/msg"
    print(f"{label:>22}: {n / dt:7.0f} msg/s  ACK {summary_ms(lat)}  not-AA {errors}{cpu}")
    return n / dt


@contextlib.asynccontextmanager
async def inproc() -> AsyncIterator[int]:
    ctx = MappingContext()

    async def handler(payload: bytes, peer: PeerInfo) -> bytes:
        return evaluate(payload, ctx).ack

    async with MLLPServer(handler, host="127.0.0.1", port=0) as server:
        yield server.port


def _wait_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"MLLP port {port} did not open")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", choices=["inproc", "serve"], default="inproc")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument(
        "--conns",
        default="1,8",
        help="comma-separated connection counts, one unpaced run each (default 1,8)",
    )
    ap.add_argument(
        "--sqlite-query",
        default="",
        help="SQLite URL query, e.g. checkpoint_interval=0 (SQLite's own checkpoint)",
    )
    args = ap.parse_args()
    conns = [int(c) for c in args.conns.split(",") if c.strip()]
    if args.target == "inproc":
        async with inproc() as port:
            await _suite(port, args.n, args.rate, conns)
        return
    schema = f"bench_mllp_{uuid.uuid4().hex[:8]}"  # a fresh database: no message is a repeat
    with tempfile.TemporaryDirectory() as tmp:
        db = (
            f"sqlite:///{tmp}/bench.db" + (f"?{args.sqlite_query}" if args.sqlite_query else "")
            if args.backend == "sqlite"
            else f"{args.pg}?schema={schema}"
        )
        mllp_port = free_port()
        server = Server(db, "--mllp-port", str(mllp_port), "--no-dicom")
        try:
            _wait_port(mllp_port)
            await _suite(mllp_port, args.n, args.rate, conns, server)
        finally:
            server.stop()
            if args.backend == "postgres":
                import psycopg

                with psycopg.connect(args.pg, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _suite(
    port: int, n: int, rate: float, conns: list[int], server: Server | None = None
) -> None:
    first = 1
    for c in conns:
        await run(port, first, n, c, server=server)
        first += n
    if rate > 0:
        await run(port, first, int(rate * 10), 1, rate, server=server)


if __name__ == "__main__":
    asyncio.run(main())
