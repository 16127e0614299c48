"""Topic-based notifications: in order, filtered, retried, and not lost across a kill -9."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fhirmwl.runtime import Runtime
from tests.conftest import free_port
from tests.integration.orders.conftest import (
    ServeProcess,
    Subscriber,
    order_bundle,
    subscription,
)


def _create(base: str, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(n):
            r = c.post("/$create-order", json=order_bundle())
            assert r.status_code == 201, r.text
            ids.append(r.headers["X-Order-Id"])
    return ids


def test_events_in_order_with_filters_and_payloads(
    api: httpx.Client, subscriber: Subscriber, order_server: Runtime
) -> None:
    created = api.post(
        "/Subscription",
        json=subscription("order-created", subscriber.url, "full-resource", [("modality", "CT")]),
    )
    assert created.status_code == 201, created.text
    other = Subscriber()
    try:
        api.post(
            "/Subscription",
            json=subscription("order-created", other.url, "id-only", [("modality", "MR")]),
        )
        cancelled = Subscriber()
        api.post("/Subscription", json=subscription("order-cancelled", cancelled.url, "empty"))
        ids = _create(order_server.settings.fhir_base, 3)
        api.post(f"/ServiceRequest/{ids[0]}/$cancel-order")
        events = subscriber.wait_for(3)
        assert [n for n, _ in events] == [1, 2, 3]
        assert [ref.rsplit("/", 1)[1] for _, ref in events] == ids
        full = [b for b in subscriber.received if len(b["entry"]) > 1]
        assert full[0]["entry"][1]["resource"]["resourceType"] == "ServiceRequest"
        assert cancelled.wait_for(1)[0][1].endswith(ids[0])
        assert len(cancelled.received[-1]["entry"]) == 1  # empty payload
        assert other.events() == []  # MR filter: nothing
        got = api.get(
            f"/Subscription/{created.json()['id']}/$events", params={"eventsSinceNumber": 2}
        ).json()
        numbers = [e["eventNumber"] for e in got["entry"][0]["resource"]["notificationEvent"]]
        assert numbers == ["2", "3"]
        cancelled.close()
    finally:
        other.close()


def test_endpoint_down_retries_and_others_unaffected(
    api: httpx.Client, subscriber: Subscriber, order_server: Runtime
) -> None:
    dead = api.post(
        "/Subscription",
        json=subscription("order-created", f"http://127.0.0.1:{free_port()}/nobody"),
    ).json()
    api.post("/Subscription", json=subscription("order-created", subscriber.url))
    _create(order_server.settings.fhir_base, 2)
    assert [n for n, _ in subscriber.wait_for(2)] == [1, 2]
    time.sleep(1.0)
    status = api.get(f"/Subscription/{dead['id']}/$status").json()
    st = status["entry"][0]["resource"]
    assert st["status"] == "error"
    assert "failed attempt" in st["error"][0]["text"]
    assert api.get(f"/Subscription/{dead['id']}").json()["status"] == "error"


@pytest.mark.slow
def test_no_event_lost_across_kill9(tmp_path: Path, catalogue_file: Path) -> None:
    slow = Subscriber(delay=0.15)
    config = tmp_path / "fhirmwl.toml"
    config.write_text("[notify]\nmax_events = 2\n")  # small batches: the kill lands mid-stream
    server = ServeProcess(f"sqlite:///{tmp_path / 'k.db'}", catalogue_file, config=config)
    try:
        server.start()
        r = httpx.post(
            f"{server.base}/Subscription", json=subscription("order-created", slow.url), timeout=10
        )
        assert r.status_code == 201
        ids = _create(server.base, 12)
        slow.wait_for(3)
        server.kill9()  # mid-delivery
        assert len({n for n, _ in slow.events()}) < 12
        server.start()
        events = slow.wait_for(12, timeout=40)
        numbers = [n for n, _ in events]
        assert sorted(set(numbers)) == list(range(1, 13))
        first_seen = list(dict.fromkeys(numbers))
        assert first_seen == sorted(first_seen)  # in order (re-deliveries only repeat)
        by_number = dict(events)
        assert [by_number[i].rsplit("/", 1)[1] for i in range(1, 13)] == ids
    finally:
        server.stop()
        slow.close()
