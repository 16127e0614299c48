"""Accession numbers: a sequence on PostgreSQL (migration 231), the counter row on SQLite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fhirmwl.config import load_settings
from fhirmwl.services.orders import ids
from fhirmwl.store.db import open_database
from fhirmwl.wiring import build_services
from tests.conftest import migrate_before


def test_migration_231_continues_after_the_counter_row(db_url: str) -> None:
    # every feature registers its migrations (a throwaway store: nothing applied to db_url)
    build_services(load_settings(None, db="sqlite:///:memory:")).close()
    db = open_database(db_url)
    migrate_before(db, 231)
    with db.transaction(write=True) as conn:
        conn.execute("INSERT INTO order_counter (name, value) VALUES ('accession', 41)")
    db.close()
    services = build_services(load_settings(None, db=db_url))  # applies 231
    try:
        with services.store.write() as tx:
            assert ids.next_counter(tx, "accession") == 42
        with services.store.write() as tx:
            assert ids.next_counter(tx, "accession") == 43
        with services.store.write() as tx:
            assert ids.next_counter(tx, "other") == 1  # a counter without a sequence: the row
            assert ids.next_counter(tx, "other") == 2
    finally:
        services.close()


def test_concurrent_counters_are_unique(db_url: str) -> None:
    services = build_services(load_settings(None, db=db_url))
    try:

        def draw(_: int) -> int:
            with services.store.write() as tx:
                return ids.next_counter(tx, "accession")

        with ThreadPoolExecutor(max_workers=8) as pool:
            values = list(pool.map(draw, range(40)))
        assert sorted(values) == list(range(1, 41))
    finally:
        services.close()
