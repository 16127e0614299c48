"""The Subscription endpoint rules are applied again before each delivery: a host name that
resolved to loopback at creation and later resolves to the metadata address is not followed."""

from __future__ import annotations

import ipaddress
import time

import httpx

from fhirmwl.runtime import Runtime
from tests.integration.orders.conftest import Subscriber, order_bundle, subscription


def test_delivery_rechecks_the_endpoint(
    api: httpx.Client, subscriber: Subscriber, order_server: Runtime
) -> None:
    endpoint = subscriber.url.replace("127.0.0.1", "localhost")
    created = api.post("/Subscription", json=subscription("order-created", endpoint))
    assert created.status_code == 201, created.text
    policy = order_server.services.endpoint_policy
    policy.resolver = lambda host: [ipaddress.ip_address("169.254.169.254")]  # rebinding
    assert api.post("/$create-order", json=order_bundle()).status_code == 201
    deadline = time.monotonic() + 20
    while True:
        status = api.get(f"/Subscription/{created.json()['id']}/$status").json()
        errors = status["entry"][0]["resource"].get("error") or []
        if errors or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert errors and "endpoint refused" in errors[0]["text"], status
    assert subscriber.events() == []  # nothing was sent to the rebound name
