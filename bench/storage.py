"""Bytes per order graph on disk, per table, for SQLite and PostgreSQL.

Loads N order graphs (the transaction Bundles of ``bench/fhir_api.py``: Patient, Encounter,
ImagingServiceRequest, RequestedProcedure, Task, ImagingStudy, one of 40 station Devices by
conditional create) in process through ``services.bundles`` — the same unit of work as ``POST
/fhir`` with the worklist index and the outbox — then updates every ``--update-every``-th Task
once (status ``requested`` → ``accepted``, as a modality does; 0 = none) so history is not
only first versions. Prints the order graphs written per second in process (no HTTP) and the
bytes per order graph: SQLite from ``dbstat`` (pages in use, tables and their indexes),
PostgreSQL from ``pg_total_relation_size`` over every table of the schema (heap, TOAST and
indexes). Asserts nothing.

    python bench/storage.py --backend sqlite --n 10000
    python bench/storage.py --backend postgres --n 10000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fhir_api import order_graph  # noqa: E402
from tests.conftest import PG_URL  # noqa: E402

from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.services.container import Services  # noqa: E402
from fhirmwl.wiring import build_services  # noqa: E402

BASE = "http://localhost/fhir"


def _sizes(services: Services) -> dict[str, int]:
    """Bytes on disk per table, its indexes counted with it."""
    with services.store.read() as tx:
        if tx.dialect == "sqlite":
            tables = dict(
                tx.conn.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
                ).fetchall()
            )
            out: dict[str, int] = {}
            for name, size in tx.conn.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
            ).fetchall():
                table = tables.get(name, name)
                out[table] = out.get(table, 0) + int(size)
            return out
        rows = tx.conn.execute(
            "SELECT table_name, pg_total_relation_size(quote_ident(table_schema) || '.' || "
            "quote_ident(table_name)) FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        ).fetchall()
        return {name: int(size) for name, size in rows}


def _accept_tasks(services: Services, every: int) -> int:
    with services.store.read() as tx:
        ids = [
            r[0]
            for r in tx.conn.execute(
                "SELECT res_id FROM resource WHERE res_type = 'Task' ORDER BY res_id"
            ).fetchall()
        ]
    done = 0
    for task_id in ids[::every]:
        with services.store.write() as tx:
            task = tx.get("Task", task_id)
            task["status"] = "accepted"
            tx.update("Task", task_id, task)
        done += 1
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--update-every", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fhirmwl-storage-")
    schema = f"bench_storage_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}?schema={schema}" if args.backend == "postgres" else f"sqlite:///{tmp}/s.db"
    services = build_services(load_settings(None, db=url, validation="off"))
    payloads: list[Any] = [order_graph(k) for k in range(args.n)]
    try:
        start = time.perf_counter()
        for bundle in payloads:
            services.bundles.process(bundle, BASE, None)
        rate = args.n / (time.perf_counter() - start)
        updated = _accept_tasks(services, args.update_every) if args.update_every else 0
        if args.backend == "postgres":  # dead tuples: what autovacuum would reclaim
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'SET search_path = "{schema}"')
                conn.execute("VACUUM")
        sizes = _sizes(services)
        total = sum(sizes.values())
        print(
            f"[{args.backend} N={args.n}] in-process order-graph transactions: {rate:.0f}/s; "
            f"{updated} Tasks updated once"
        )
        print(
            f"[{args.backend} N={args.n}] storage: {total / args.n:,.0f} bytes per order graph "
            f"({total / 2**20:,.1f} MiB in all)"
        )
        for table, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
            if size * 100 >= total:
                print(f"    {table:24s} {size / args.n:8,.0f} B/order  {100 * size / total:5.1f} %")
        if args.keep:
            print(f"kept: {url}")
    finally:
        if args.backend == "postgres" and not args.keep:
            with services.store.write() as tx:
                tx.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        services.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
