"""Concurrent find-or-create yields exactly one resource, on SQLite and PostgreSQL.

4 MLLP connections × 50 orders that all name one new referring physician (PV1-8), one new
ordering provider (ORC-12) and one new station (IPC-9) must leave one Practitioner per physician
and one station Device; concurrent conditional creates and updates of one Patient identifier over
HTTP leave one Patient; two ``fhirmwl serve`` processes on one PostgreSQL schema do the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from fhirmwl.fhir.model import STATION_AE_SYSTEM
from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from tests.conftest import REPO, free_port
from tests.integration.mllp_service.conftest import start_runtime
from tests.integration.mllp_service.messages import msa

CONNECTIONS, ORDERS = 4, 50
OMI = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||OMI^O23^OMI_O23|{cid}|P|2.5.1\r"
    "PID|||{pid}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "PV1||O||||||{ref}^SMITH^JOHN|||||||||||V{pid}^^^HOSP\r"
    "ORC|NW|{placer}^RIS|||||||20250101115500|||{orderer}^JONES^AMY\r"
    "TQ1|1||||||20250102090000||R\r"
    "OBR|1|{placer}^RIS||MRHEAD^MR head^LOCAL\r"
    "IPC|ACC{placer}^HOSP|RP{placer}|1.2.826.0.1.3680043.10.998.{n}|SPS{placer}|MR"
    "|P2^MR head^LOCAL|MR1||{station}\r"
)


def _messages(conn: int, tag: str) -> list[bytes]:
    out = []
    for i in range(ORDERS):
        n = conn * ORDERS + i
        out.append(
            OMI.format(
                cid=f"{tag}C{n}",
                pid=f"{tag}P{n}",
                placer=f"{tag}PL{n}",
                n=n + 1,
                ref=f"{tag}REF",
                orderer=f"{tag}ORD",
                station=f"{tag}AE",
            ).encode()
        )
    return out


def _send_all(ports: list[int], tag: str) -> list[bytes]:
    def run(conn: int) -> list[bytes]:
        port = ports[conn % len(ports)]
        return send_messages("127.0.0.1", port, _messages(conn, tag), timeout=120)

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        return [ack for acks in pool.map(run, range(CONNECTIONS)) for ack in acks]


def _count(base: str, rtype: str, query: str) -> int:
    r = httpx.get(f"{base}/{rtype}?{query}&_summary=count", timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def _assert_one_each(base: str, tag: str) -> None:
    # one ImagingServiceRequest and one RequestedProcedure per order, one step each
    assert _count(base, "ServiceRequest", "status=active") == 2 * CONNECTIONS * ORDERS
    assert _count(base, "Task", "status=requested") == CONNECTIONS * ORDERS
    for value in (f"{tag}REF", f"{tag}ORD"):
        assert _count(base, "Practitioner", f"identifier={value}") == 1, value
    assert _count(base, "Device", f"identifier={STATION_AE_SYSTEM}|{tag}AE") == 1


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    rt = start_runtime(db_url)
    yield rt
    rt.stop()


def test_four_connections_one_physician_one_station(runtime: Runtime) -> None:
    acks = _send_all([runtime.settings.mllp_port], "R")
    assert [msa(a)[0] for a in acks] == ["AA"] * (CONNECTIONS * ORDERS)
    _assert_one_each(runtime.settings.fhir_base, "R")


def _conditional_patient_writes(bases: list[str]) -> None:
    """24 conditional creates (If-None-Exist) and updates (PUT ?identifier) of one new MRN."""
    system = "urn:test:mrn"
    query = f"identifier={system}|COND1"

    def write(i: int) -> int:
        base = bases[i % len(bases)]
        body: dict[str, Any] = {
            "resourceType": "Patient",
            "identifier": [{"system": system, "value": "COND1"}],
            "birthDate": f"19{50 + i % 40}-01-01",
        }
        headers = {"Content-Type": "application/fhir+json"}
        if i % 4 >= 2:  # both processes see both kinds of write
            r = httpx.put(f"{base}/Patient?{query}", json=body, headers=headers, timeout=60)
        else:
            headers["If-None-Exist"] = query
            r = httpx.post(f"{base}/Patient", json=body, headers=headers, timeout=60)
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(write, range(24)))
    assert set(statuses) <= {200, 201}, statuses
    assert statuses.count(201) == 1
    assert _count(bases[0], "Patient", query) == 1


def test_concurrent_new_orders_with_one_placer_number(runtime: Runtime) -> None:
    """The same NW (new MSH-10 each time) from 4 connections at once: one order, all AA."""
    one = _messages(0, "Q")[0]

    def run(conn: int) -> list[bytes]:
        msgs = [one.replace(b"|QC0|", f"|QC0-{conn}-{i}|".encode()) for i in range(5)]
        return send_messages("127.0.0.1", runtime.settings.mllp_port, msgs, timeout=120)

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        acks = [a for batch in pool.map(run, range(CONNECTIONS)) for a in batch]
    assert [msa(a)[0] for a in acks] == ["AA"] * (CONNECTIONS * 5)
    base = runtime.settings.fhir_base
    assert _count(base, "ServiceRequest", "identifier=QPL0") == 1
    assert _count(base, "Task", "identifier=SPSQPL0") == 1


def test_concurrent_conditional_writes_of_one_patient(runtime: Runtime) -> None:
    _conditional_patient_writes([runtime.settings.fhir_base])


@contextmanager
def _serve(db: str) -> Iterator[tuple[str, int]]:
    """``fhirmwl serve`` as a separate OS process with HTTP and MLLP on free ports."""
    http_port, mllp_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "fhirmwl.cli", "serve", "--no-dicom", "--db", db]
    cmd += ["--http-port", str(http_port), "--mllp-port", str(mllp_port)]
    env = {k: v for k, v in os.environ.items() if k != "FHIRMWL_CONFIG"}
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{http_port}/fhir"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fhirmwl serve did not come up")
            time.sleep(0.1)
        yield base, mllp_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_serve_processes_one_physician_one_station(pg_url: str) -> None:
    from fhirmwl.store import open_store

    open_store(pg_url).close()  # migrate once, so the two processes start on a ready schema
    with _serve(pg_url) as (base, port_a), _serve(pg_url) as (base_b, port_b):
        _conditional_patient_writes([base, base_b])
        acks = _send_all([port_a, port_b], "S")
        assert [msa(a)[0] for a in acks] == ["AA"] * (CONNECTIONS * ORDERS)
        _assert_one_each(base, "S")
