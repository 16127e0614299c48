"""Two OS processes sharing one PostgreSQL database: no lost update, no duplicate identifier."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest

from fhirmwl.errors import DuplicateIdentifier, PreconditionFailed
from fhirmwl.store import open_store

pytestmark = pytest.mark.postgres
ROUNDS = 10


def _updater(url: str, barrier: Any, results: Any, name: str) -> None:
    store = open_store(url)
    try:
        for n in range(ROUNDS):
            with store.read() as tx:
                current = tx.read("Patient", "shared")
            assert current is not None
            barrier.wait()
            try:
                with store.write() as tx:
                    # distinct content per process and round, so no update is a no-op
                    body = current.resource() | {
                        "gender": "other",
                        "active": name == "a",
                        "birthDate": f"19{50 + n}-01-01",
                    }
                    tx.update("Patient", "shared", body, if_match=current.version)
                results.put((name, "won", current.version))
            except PreconditionFailed:
                results.put((name, "412", current.version))
            barrier.wait()
    finally:
        store.close()


def _creator(url: str, barrier: Any, results: Any, name: str) -> None:
    store = open_store(url)
    acsn = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}
    try:
        for n in range(ROUNDS):
            barrier.wait()
            try:
                with store.write() as tx:
                    tx.create(
                        "ServiceRequest",
                        {
                            "resourceType": "ServiceRequest",
                            "status": "active",
                            "intent": "order",
                            "subject": {"reference": "Patient/shared"},
                            "identifier": [{"type": acsn, "system": "urn:acsn", "value": f"A{n}"}],
                        },
                    )
                results.put((name, "won", n))
            except DuplicateIdentifier:
                results.put((name, "dup", n))
    finally:
        store.close()


def _run_pair(target: Any, url: str) -> list[tuple[str, str, int]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, barrier, results, n)) for n in ("a", "b")]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in range(2 * ROUNDS)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return out


def test_if_match_race_has_exactly_one_winner(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.write() as tx:
        tx.update("Patient", "shared", {"resourceType": "Patient", "gender": "unknown"})
    outcomes = _run_pair(_updater, pg_url)
    per_version: dict[int, list[str]] = {}
    for _name, result, version in outcomes:
        per_version.setdefault(version, []).append(result)
    assert all(sorted(r) == ["412", "won"] for r in per_version.values()), per_version
    with store.read() as tx:
        history = tx.history("Patient", "shared", 100, 0)
    assert [h.version for h in history] == list(range(ROUNDS + 1, 0, -1))  # no lost version
    store.close()


def test_same_accession_number_created_once(pg_url: str) -> None:
    open_store(pg_url).close()  # migrate once before racing
    outcomes = _run_pair(_creator, pg_url)
    per_round: dict[int, list[str]] = {}
    for _name, result, n in outcomes:
        per_round.setdefault(n, []).append(result)
    assert all(sorted(r) == ["dup", "won"] for r in per_round.values()), per_round
