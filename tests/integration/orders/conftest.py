"""Order workflow fixtures: a catalogue, an order Bundle, a server, a subscriber, subprocesses."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirmwl.runtime import Runtime
from tests.conftest import REPO, free_port, running_broker, wait_ready

EXAMPLE = REPO / "tests/unit/conformance/examples/Bundle-CreateOrderRequest-Example.json"
CATALOGUE = """
[stations.CT1]
name = "CT Room 1"
[groups]
ct = ["CT1", "CT2"]
[procedures."72254-7"]
modality = "CT"
group = "ct"
duration = 30
description = "CT abdomen pelvis with contrast"
protocol = [{ system = "http://loinc.org", code = "72254-7", display = "CT Abd Pel W contrast" }]
"""


def order_bundle(placer: str | None = None) -> dict[str, Any]:
    """The guide's example order without what the broker assigns (ACSN, Task, study, station)."""
    bundle = json.loads(EXAMPLE.read_text())
    bundle["entry"] = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] not in ("Task", "ImagingStudy", "Device")
    ]
    isr = bundle["entry"][0]["resource"]
    isr["identifier"] = [
        i for i in isr["identifier"] if "ACSN" not in json.dumps(i) and "FILL" not in json.dumps(i)
    ]
    isr["identifier"][0]["value"] = placer or f"P{uuid.uuid4().hex[:10]}"
    rp = bundle["entry"][1]["resource"]
    rp["identifier"] = []
    rp["occurrenceDateTime"] = "2030-01-01T09:00:00Z"
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["request"] = {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=http://goodhealth.org/mrn|PID12345",
    }
    return copy.deepcopy(bundle)


@pytest.fixture
def catalogue_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE)
    return path


@pytest.fixture
def order_server(tmp_path: Path, catalogue_file: Path) -> Iterator[Runtime]:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    with running_broker(db, catalogue=str(catalogue_file)) as runtime:
        yield runtime


@pytest.fixture
def api(order_server: Runtime) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=order_server.settings.fhir_base,
        timeout=30,
        headers={"Content-Type": "application/fhir+json"},
    ) as c:
        yield c


class Subscriber:
    """A rest-hook endpoint on loopback that records every notification Bundle."""

    def __init__(self, delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived: dict[int, float] = {}  # event number → first arrival (perf_counter)
        self.delay = delay
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.delay:
                    time.sleep(outer.delay)
                bundle = json.loads(body)
                now = time.perf_counter()
                status = bundle["entry"][0]["resource"]
                for ev in status.get("notificationEvent") or []:
                    outer.arrived.setdefault(int(ev["eventNumber"]), now)
                outer.received.append(bundle)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[tuple[int, str]]:
        out = []
        for b in self.received:
            status = b["entry"][0]["resource"]
            for ev in status.get("notificationEvent") or []:
                out.append((int(ev["eventNumber"]), ev["focus"]["reference"]))
        return out

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[int, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len({n for n, _ in self.events()}) >= count:
                break
            time.sleep(0.05)
        return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    yield sub
    sub.close()


def subscription(
    topic: str,
    endpoint: str,
    content: str = "id-only",
    filters: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    from fhirmwl.notify.topics import TOPIC_BASE

    sub: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "topic": f"{TOPIC_BASE}/{topic}",
        "channelType": {
            "system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type",
            "code": "rest-hook",
        },
        "endpoint": endpoint,
        "content": content,
        "contentType": "application/fhir+json",
    }
    if filters:
        sub["filterBy"] = [{"filterParameter": k, "value": v} for k, v in filters]
    return sub


class ServeProcess:
    """``python -m fhirmwl.cli serve`` as a subprocess (for kill -9 and multi-process tests)."""

    def __init__(
        self, db: str, catalogue: Path, port: int | None = None, config: Path | None = None
    ) -> None:
        self.db, self.catalogue, self.port = db, catalogue, port or free_port()
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> None:
        env = dict(os.environ, FHIRMWL_CATALOGUE=str(self.catalogue))
        if self.config is not None:
            env["FHIRMWL_CONFIG"] = str(self.config)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fhirmwl.cli",
                "serve",
                "--no-mllp",
                "--no-dicom",
                "--db",
                self.db,
                "--http-port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        if wait_ready(f"{self.base}/metadata", timeout=30):
            return
        raise RuntimeError("fhirmwl serve did not come up")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
