"""$create-order throughput and p95 latency (SQLite, PostgreSQL), and notification delivery
latency p95 from commit to a rest-hook subscriber. Run: ``python bench/orders.py [N [CLIENTS]]``.

An in-process server (same code path as ``fhirmwl serve``) on loopback; one sequential
keep-alive client by default, so the figures are per-request latency, not client-side
concurrency (CLIENTS > 1: that many concurrent clients; the notification lag then pairs
answers and event numbers in answer order, an approximation). The subscriber
(same process) stamps each event number when its notification arrives; the commit happens
between sending the request and receiving the 201, so the lag is reported from both ends
(from the 201 = lower bound, from sending = upper bound).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import PG_URL, free_port  # noqa: E402
from tests.integration.orders.conftest import (  # noqa: E402
    CATALOGUE,
    Subscriber,
    order_bundle,
    subscription,
)

from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.runtime import Runtime  # noqa: E402


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def run(db: str, n: int, catalogue: Path, clients: int = 1) -> None:
    settings = load_settings(
        None, db=db, http_port=free_port(), mllp=False, dicom=False, catalogue=str(catalogue)
    )
    runtime = Runtime(settings)
    runtime.start()
    sub = Subscriber()
    try:
        with httpx.Client(base_url=settings.fhir_base, timeout=60) as c:
            c.post("/Subscription", json=subscription("order-created", sub.url))
        latencies: list[float] = []
        started: list[float] = []
        answered: list[float] = []

        def client(count: int) -> None:
            with httpx.Client(base_url=settings.fhir_base, timeout=60) as c:
                for _ in range(count):
                    t0 = time.perf_counter()
                    r = c.post("/$create-order", json=order_bundle())
                    assert r.status_code == 201, r.text
                    t1 = time.perf_counter()
                    with lock:  # the k-th answer is event number k (one event per order)
                        started.append(t0)
                        answered.append(t1)
                        latencies.append(t1 - t0)

        lock = threading.Lock()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(client, [n // clients + (i < n % clients) for i in range(clients)]))
        elapsed = time.perf_counter() - start
        deadline = time.perf_counter() + 60
        while len(sub.arrived) < n and time.perf_counter() < deadline:
            time.sleep(0.01)
        kind = db.split(":")[0] + (f" ({clients} clients)" if clients > 1 else "")
        print(
            f"{kind}: {n} orders, {n / elapsed:.0f} orders/s, "
            f"p95 {p95(latencies) * 1000:.1f} ms, "
            f"median {statistics.median(latencies) * 1000:.1f} ms"
        )
        got = [i for i in range(n) if i + 1 in sub.arrived]
        if got:
            low = [sub.arrived[i + 1] - answered[i] for i in got]
            high = [sub.arrived[i + 1] - started[i] for i in got]
            print(
                f"{kind}: notification commit→subscriber p95 {p95(low) * 1000:.1f} ms "
                f"(from the 201; {p95(high) * 1000:.1f} ms from sending the request), "
                f"{len(got)}/{n} delivered in {len(sub.received)} notification(s)"
            )
    finally:
        sub.close()
        runtime.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("n", type=int, nargs="?", default=200, help="orders per backend")
    ap.add_argument("clients", type=int, nargs="?", default=1, help="concurrent clients")
    args = ap.parse_args()
    n, clients = args.n, args.clients
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = Path(tmp) / "catalogue.toml"
        catalogue.write_text(CATALOGUE)
        run(f"sqlite:///{tmp}/bench.db", n, catalogue, clients)
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS bench_orders CASCADE")
            run(f"{PG_URL}?schema=bench_orders", n, catalogue, clients)
        except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional for the bench
            print(f"postgresql: skipped ({exc})")


if __name__ == "__main__":
    main()
