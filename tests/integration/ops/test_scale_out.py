"""Scale-out proof: two ``serve`` processes on one PostgreSQL schema, traffic on both doors of
both processes, one killed with SIGKILL mid-delivery; the survivor delivers every notification.

Delivery is at least once with event numbers (R5 topic-based Subscriptions): a batch in flight at
the kill may arrive twice, so the subscriber de-duplicates by event number, as the spec intends;
the test checks that every event arrives, first arrivals are in order, and a repeat is rare.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fhirmwl.mllp import send_messages
from tests.conftest import REPO, free_port, wait_ready
from tests.integration.mllp_service.messages import orm
from tests.integration.orders.conftest import CATALOGUE, Subscriber, order_bundle, subscription


class Broker:
    def __init__(self, db: str, config: Path, catalogue: Path) -> None:
        self.http, self.mllp = free_port(), free_port()
        env = dict(os.environ, FHIRMWL_CONFIG=str(config), FHIRMWL_CATALOGUE=str(catalogue))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fhirmwl.cli", "serve", "--no-dicom", "--db", db]
            + ["--http-port", str(self.http), "--mllp-port", str(self.mllp)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait_ready(f"{self.base}/readyz"):
            return
        self.stop()
        raise RuntimeError("serve did not become ready")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_one_killed_every_notification_delivered(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "fhirmwl.toml"
    config.write_text("[notify]\nmax_events = 2\n")  # small batches: the kill lands mid-stream
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(CATALOGUE)
    slow = Subscriber(delay=0.15)
    a = Broker(pg_url, config, catalogue)
    b = Broker(pg_url, config, catalogue)
    try:
        created = httpx.post(
            f"{a.base}/fhir/Subscription",
            json=subscription("order-created", slow.url),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        # HL7 v2 to each process; one order over FHIR to each process.
        for broker, tag in ((a, "A"), (b, "B")):
            first = [orm("NW", f"SO{tag}0", f"SO{tag}0", pid=f"SOP{tag}0")]
            assert b"MSA|AA" in send_messages("127.0.0.1", broker.mllp, first, timeout=60)[0]
            more = [
                orm("NW", f"SO{tag}{n}", f"SO{tag}{n}", pid=f"SOP{tag}{n}") for n in (1, 2, 3, 4)
            ]
            acks = send_messages("127.0.0.1", broker.mllp, more, timeout=60)
            assert all(b"MSA|AA" in ack for ack in acks), acks
            r = httpx.post(f"{broker.base}/fhir/$create-order", json=order_bundle(), timeout=60)
            assert r.status_code == 201, r.text
        total = 12
        slow.wait_for(3, timeout=60)
        a.proc.send_signal(signal.SIGKILL)  # mid-delivery
        a.proc.wait(timeout=10)
        events = slow.wait_for(total, timeout=90)
    finally:
        a.stop()
        b.stop()
        slow.close()
    numbers = [n for n, _ in events]
    assert sorted(set(numbers)) == list(range(1, total + 1)), numbers
    first_seen = list(dict.fromkeys(numbers))
    assert first_seen == sorted(first_seen)
    repeats = len(numbers) - len(set(numbers))
    assert repeats <= 2, f"{repeats} repeated deliveries (at most one in-flight batch expected)"
