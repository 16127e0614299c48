"""A PostgreSQL deadlock between two units of work is retried, re-reading, and both succeed.

Two threads take the same two identifier locks in opposite order: PostgreSQL aborts one of them
(deadlock detected); ``Store.write`` reports it as ``WriteConflict`` and ``Store.run_write`` runs
that unit of work again, which then finds what the other one created instead of creating a twin.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from fhirmwl.errors import WriteConflict
from fhirmwl.services.resources import ResourceService
from fhirmwl.store import Tx, open_store


@pytest.mark.postgres
def test_deadlock_becomes_write_conflict_and_is_retried(pg_url: str) -> None:
    store = open_store(pg_url)
    resources = ResourceService(store)
    barrier = threading.Barrier(2)
    attempts: list[str] = []

    def patient(mrn: str) -> dict[str, object]:
        return {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]}

    def work(first: str, second: str) -> str:
        def unit(tx: Tx) -> str:
            attempts.append(first)
            for n, mrn in enumerate((first, second)):
                resources.create(tx, "Patient", patient(mrn), f"identifier=urn:mrn|{mrn}")
                if n == 0 and attempts.count(first) == 1:
                    barrier.wait(timeout=30)  # both hold their first lock: a lock cycle
            return first

        return store.run_write(unit)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = list(pool.map(lambda pair: work(*pair), [("A", "B"), ("B", "A")]))
        assert sorted(done) == ["A", "B"]
        assert len(attempts) == 3  # one of the two ran again after the deadlock
        with store.read() as tx:
            for mrn in ("A", "B"):
                assert len(resources.find(tx, "Patient", f"identifier=urn:mrn|{mrn}")) == 1
    finally:
        store.close()


def test_write_conflict_surfaces_after_the_last_attempt(db_url: str) -> None:
    store = open_store(db_url)
    calls: list[int] = []

    def always(tx: Tx) -> None:
        calls.append(1)
        raise WriteConflict("simulated")

    try:
        with pytest.raises(WriteConflict):
            store.run_write(always, attempts=3)
        assert len(calls) == 3
    finally:
        store.close()
