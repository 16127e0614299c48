"""What the audit trail costs: HL7 v2 ingest and FHIR reads with audit on and off, same run.

Alternates ``FHIRMWL_AUDIT=true`` / ``false`` over fresh stores (``--rounds`` each), sending
``--n`` orders over one MLLP connection and then ``--reads`` FHIR reads of one resource over one
keep-alive connection; prints each round and the median overhead.

    python bench/audit_cost.py --backend sqlite --n 1000 --reads 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import tempfile
import time
import uuid

from _common import Server, free_port
from mllp_ingest import _wait_port, run


def _reads(port: int, count: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/fhir/Patient?_count=1")
    bundle = json.loads(conn.getresponse().read())
    patient_id = bundle["entry"][0]["resource"]["id"]
    start = time.perf_counter()
    for _ in range(count):
        conn.request("GET", f"/fhir/Patient/{patient_id}")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    return count / (time.perf_counter() - start)


def one_round(backend: str, pg: str, audit: bool, n: int, reads: int) -> tuple[float, float]:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/b.db" if backend == "sqlite" else f"{pg}?schema={schema}"
        mllp_port = free_port()
        env = {"FHIRMWL_AUDIT": "true" if audit else "false"}
        server = Server(db, "--mllp-port", str(mllp_port), "--no-dicom", env=env)
        try:
            _wait_port(mllp_port)
            print(f"audit {'on ' if audit else 'off'}", end=" ")
            ingest = asyncio.run(run(mllp_port, 1, n, 1))
            read_rate = _reads(server.port, reads)
            print(f"{'':>22}  reads {read_rate:7.0f}/s")
        finally:
            server.stop()
            if backend == "postgres":
                import psycopg

                with psycopg.connect(pg, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return ingest, read_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for audit in (False, True):
            results[audit].append(one_round(args.backend, args.pg, audit, args.n, args.reads))
    for index, label in ((0, "ingest msg/s"), (1, "reads/s")):
        off = statistics.median(r[index] for r in results[False])
        on = statistics.median(r[index] for r in results[True])
        print(
            f"{label:>14}: audit off {off:7.0f}  on {on:7.0f}  cost {100 * (1 - on / off):5.1f} %"
        )


if __name__ == "__main__":
    main()
