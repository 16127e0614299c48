"""SQL statements and CPU time per order, in process: ``$create-order``, HL7 v2 NW and the
order-graph transaction Bundle of ``bench/fhir_api.py``.

On a shared, loaded machine throughput swings by 2x between runs; the number of SQL statements
per order does not, and on PostgreSQL each statement is a round trip (about 0.4 ms here), so this
is the figure to compare before and after a change of the write path. CPU time (process time)
is less sensitive to other load than wall time. Prints figures; asserts nothing.

    python bench/order_statements.py --backend postgres --n 30
    python bench/order_statements.py --backend sqlite --n 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fhir_api import order_graph  # noqa: E402
from mllp_ingest import message  # noqa: E402
from tests.conftest import PG_URL  # noqa: E402
from tests.integration.orders.conftest import CATALOGUE, order_bundle  # noqa: E402

import fhirmwl.store.db as db  # noqa: E402
from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.services import orders  # noqa: E402
from fhirmwl.services.ingest_v2 import ingest  # noqa: E402
from fhirmwl.wiring import build_services  # noqa: E402

COUNTS: Counter[str] = Counter()
TRANSACTIONS = Counter[str]()


def _counting(cls: Any) -> None:
    """Count ``execute`` and ``executemany`` calls: on PostgreSQL each is one round trip
    (psycopg sends the rows of one ``executemany`` in one pipeline)."""
    original, original_many = cls.execute, cls.executemany

    def execute(self: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        COUNTS[" ".join(sql.split())[:60]] += 1
        return original(self, sql, params)

    def executemany(self: Any, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        if rows:
            COUNTS["(many) " + " ".join(sql.split())[:53]] += 1
        return original_many(self, sql, rows)

    cls.execute = execute
    cls.executemany = executemany


def _counting_transactions(cls: Any) -> None:
    original = cls.transaction

    def transaction(self: Any, write: bool) -> Any:
        TRANSACTIONS["write" if write else "read"] += 1
        return original(self, write)

    cls.transaction = transaction


def _counting_scripts(cls: Any) -> None:
    """``PostgresDatabase.script`` (the outbox sequencer): one round trip, its own transaction."""
    original = cls.script

    def script(self: Any, sql: str) -> Any:
        COUNTS["(script) " + " ".join(sql.split())[:51]] += 1
        TRANSACTIONS["script"] += 1
        return original(self, sql)

    cls.script = script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--top", type=int, default=0, help="also list the N most frequent statements")
    args = ap.parse_args()
    _counting(db._SqliteConn)
    _counting(db._PgConn)
    _counting_transactions(db.SqliteDatabase)
    _counting_transactions(db.PostgresDatabase)
    _counting_scripts(db.PostgresDatabase)
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = Path(tmp) / "catalogue.toml"
        catalogue.write_text(CATALOGUE)
        schema = f"bench_stmt_{uuid.uuid4().hex[:8]}"
        url = f"{PG_URL}?schema={schema}" if args.backend == "postgres" else f"sqlite:///{tmp}/b.db"
        services = build_services(load_settings(None, db=url, catalogue=str(catalogue)))
        ctx = services.orders()
        try:
            for i in range(5):  # warm caches (validators, structure checks)
                with services.store.write() as tx:
                    orders.create_order(tx, order_bundle(), ctx)
                ingest(services, message(100_000 + i))
            for kind in ("$create-order", "v2 NW", "transaction"):
                COUNTS.clear()
                TRANSACTIONS.clear()
                cpu = time.process_time()
                for i in range(args.n):
                    if kind == "v2 NW":
                        ingest(services, message(i))
                    elif kind == "transaction":  # the order graph Bundle of bench/fhir_api.py
                        services.bundles.process(order_graph(i), "http://localhost/fhir", None)
                    else:
                        with services.store.write() as tx:
                            orders.create_order(tx, order_bundle(), ctx)
                per_op = (time.process_time() - cpu) / args.n * 1000
                statements = sum(COUNTS.values()) / args.n
                tx_per_op = sum(TRANSACTIONS.values()) / args.n
                print(
                    f"{args.backend} {kind}: {statements:.1f} statements in {tx_per_op:.1f} "
                    f"transactions, CPU {per_op:.1f} ms"
                )
                for sql, n in COUNTS.most_common(args.top):
                    print(f"    {n / args.n:6.2f}  {sql}")
        finally:
            if args.backend == "postgres":
                with services.store.write() as tx:
                    tx.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            services.close()


if __name__ == "__main__":
    main()
