"""Shared fixtures: database URLs for both backends, a free port, the corpus location."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
CORPUS = SHARED / "corpus"
# The guide's example instances as one transaction, exactly as published (spec/ig.md §2); the
# copy in tests/data/ (used by the README) must stay identical (tests/unit/conformance).
IG_EXAMPLES = SHARED / "spec" / "ig-examples-transaction.json"
PG_URL = os.environ.get("FHIRMWL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _port_pool() -> Iterator[int]:
    """Loopback ports below the kernel's ephemeral range, in a random order per process."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    ports = list(range(10000, max(10001, low)))
    random.shuffle(ports)
    yield from ports


_PORTS = _port_pool()


def free_port() -> int:
    """A loopback port that is free now, for a server a test starts.

    Taken from below the kernel's ephemeral range, never by binding port 0: a port the kernel
    hands out for port 0 is an ephemeral one, which any outgoing connection of the test run (a
    PostgreSQL or HTTP client) may be given before the server binds it ("address already in
    use", seen in CI). Each port is handed out once per process."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the pool is used up: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; dropped afterwards."""
    if not _pg_available():
        if os.environ.get("FHIRMWL_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required but not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fhirmwl.db'}"
    else:
        yield from pg_schema_url()


def require_corpus(path: Path) -> Path:
    """Return ``path`` inside the shared corpus; skip when it is missing on a developer machine,
    but fail under CI (``CI`` or ``FHIRMWL_REQUIRE_CORPUS`` set), where a silent skip would hide
    that the third-party material was never exercised."""
    if not path.exists():
        message = f"shared corpus file not present: {path}"
        if os.environ.get("FHIRMWL_REQUIRE_CORPUS") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def corpus() -> Path:
    return require_corpus(CORPUS)


@pytest.fixture(scope="session")
def mwl_corpus() -> Path:
    """The DICOM worklist part of the shared corpus (DCMTK/Orthanc items and queries)."""
    return require_corpus(CORPUS / "mwl")


@contextmanager
def running_broker(
    db: str,
    *,
    dicom: bool = False,
    mllp: bool = False,
    config: Path | None = None,
    **settings: Any,
) -> Iterator[Any]:
    """A started ``Runtime`` on free loopback ports: HTTP always, DICOM/MLLP when asked;
    ``config``: a TOML file for the sections (``[[dicom_peers]]``, …)."""
    from fhirmwl.config import load_settings
    from fhirmwl.runtime import Runtime

    ports = {"dicom_port": free_port()} if dicom else {}
    if mllp:
        ports["mllp_port"] = free_port()
    runtime = Runtime(
        load_settings(
            config, db=db, http_port=free_port(), dicom=dicom, mllp=mllp, **ports, **settings
        )
    )
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def wait_ready(url: str, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers 200 (a ``serve`` subprocess coming up); False at timeout."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def serve_with_mllp(db: str) -> tuple[Any, int, int]:
    """``fhirmwl serve`` (HTTP + MLLP, no DICOM) as a subprocess, once ready: (process, HTTP
    port, MLLP port). For kill -9 tests; the caller kills and waits for it."""
    import subprocess
    import sys

    http_port, mllp_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhirmwl.cli", "serve", "--no-dicom", "--db", db]
        + ["--http-port", str(http_port), "--mllp-port", str(mllp_port)],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_ready(f"http://127.0.0.1:{http_port}/readyz"):
        proc.kill()
        proc.wait()
        raise RuntimeError("fhirmwl serve did not become ready")
    return proc, http_port, mllp_port


def ig_examples() -> dict[str, Any]:
    """The guide's example transaction, read in place; fails (not skips) when required."""
    import json

    if not IG_EXAMPLES.is_file():
        if os.environ.get("FHIRMWL_REQUIRE_CORPUS") or os.environ.get("CI"):
            pytest.fail(f"{IG_EXAMPLES} is required but missing")
        pytest.skip(f"{IG_EXAMPLES} is not present")
    return dict(json.loads(IG_EXAMPLES.read_text(encoding="utf-8")))


def migrate_before(db: Any, version: int) -> None:
    """Apply the registered migrations older than ``version``: a database as an earlier release
    left it, for the tests of a migration that converts it."""
    from fhirmwl.store.migrations import MIGRATIONS, migrate

    kept = list(MIGRATIONS)
    MIGRATIONS[:] = [m for m in kept if m.version < version]
    try:
        migrate(db)
    finally:
        MIGRATIONS[:] = kept
