"""20 parallel $create-order calls from two server processes on one PostgreSQL database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fhirmwl.fhir import model
from tests.integration.orders.conftest import ServeProcess, order_bundle


@pytest.mark.postgres
def test_twenty_parallel_creates_two_processes_unique_accessions_one_station(
    pg_url: str, catalogue_file: Path
) -> None:
    servers = [ServeProcess(pg_url, catalogue_file) for _ in range(2)]
    try:
        for s in servers:
            s.start()

        def create(i: int) -> str:
            r = httpx.post(f"{servers[i % 2].base}/$create-order", json=order_bundle(), timeout=60)
            assert r.status_code == 201, r.text
            isr = r.json()["entry"][0]["resource"]
            ident = model.identifier_of_type(isr, model.ACSN)
            assert ident is not None
            return str(ident["value"])

        with ThreadPoolExecutor(max_workers=20) as pool:
            accessions = list(pool.map(create, range(20)))
        assert len(set(accessions)) == 20
        # the catalogue's stations were created concurrently: one Device per AE title
        for ae in ("CT1", "CT2"):
            r = httpx.get(f"{servers[0].base}/Device?name:exact={ae}", timeout=30)
            assert len(r.json().get("entry") or []) == 1, ae
    finally:
        for s in servers:
            s.stop()
