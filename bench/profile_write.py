"""cProfile of the write path in process (no HTTP, no MLLP): HL7 v2 NW, ``$create-order`` and
order-graph transactions through the service layer, on SQLite or PostgreSQL.

Prints the CPU per operation and the functions with the most cumulative and own time, so a
change of the write path can be compared before/after on the same machine. Asserts nothing.

    python bench/profile_write.py --kind v2 --n 500
    python bench/profile_write.py --kind create-order --n 300
    python bench/profile_write.py --kind transaction --n 300 --top 40
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fhir_api import order_graph  # noqa: E402
from mllp_ingest import message  # noqa: E402
from tests.conftest import PG_URL  # noqa: E402
from tests.integration.orders.conftest import CATALOGUE, order_bundle  # noqa: E402

from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.services import orders  # noqa: E402
from fhirmwl.services.ingest_v2 import ingest  # noqa: E402
from fhirmwl.wiring import build_services  # noqa: E402

try:  # (absent before the write-path CPU work: the same command runs on older checkouts)
    from fhirmwl.runtime import freeze_startup_heap
except ImportError:  # pragma: no cover
    freeze_startup_heap = None  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--kind", choices=["v2", "create-order", "transaction"], default="v2")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--no-profile", action="store_true", help="CPU per operation only")
    ap.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the startup heap in the collector (serve freezes it once started)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = Path(tmp) / "catalogue.toml"
        catalogue.write_text(CATALOGUE)
        schema = f"bench_prof_{uuid.uuid4().hex[:8]}"
        url = f"{PG_URL}?schema={schema}" if args.backend == "postgres" else f"sqlite:///{tmp}/b.db"
        services = build_services(load_settings(None, db=url, catalogue=str(catalogue)))
        ctx = services.orders()

        def one(i: int) -> None:
            if args.kind == "v2":
                ack = ingest(services, message(i))
                assert b"MSA|AA|" in ack, ack
            elif args.kind == "create-order":
                with services.store.write() as tx:
                    orders.create_order(tx, order_bundle(), ctx)
            else:
                services.bundles.process(order_graph(i), "http://x/fhir", None)

        try:
            for i in range(5):  # warm caches (validators, structure checks)
                one(100_000 + i)
            if not args.no_gc_freeze and freeze_startup_heap is not None:
                freeze_startup_heap()  # as ``serve`` does once its listeners are up
            prof = cProfile.Profile()
            cpu, wall = time.process_time(), time.perf_counter()
            if not args.no_profile:
                prof.enable()
            for i in range(args.n):
                one(i)
            prof.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{args.backend} {args.kind}: {args.n} in {wall:.2f} s, "
                f"CPU {cpu / args.n * 1000:.2f} ms/op, wall {wall / args.n * 1000:.2f} ms/op"
                + (" (profiled)" if not args.no_profile else "")
            )
            if not args.no_profile:
                stats = pstats.Stats(prof)
                stats.sort_stats(args.sort).print_stats(args.top)
        finally:
            if args.backend == "postgres":
                with services.store.write() as tx:
                    tx.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            services.close()


if __name__ == "__main__":
    main()
