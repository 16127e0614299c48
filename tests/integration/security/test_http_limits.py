"""HTTP limits on a running broker: body size, Bundle entries, slow headers, Subscription
endpoints; each answered with a clear error while a normal client keeps being served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import subscription

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    db = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'limits.db'}"
    with running_broker(
        db, http_max_body_bytes=LIMIT, http_max_bundle_entries=10, http_header_timeout=1
    ) as runtime:
        yield runtime


@pytest.fixture
def api(broker: Runtime) -> Iterator[httpx.Client]:
    headers = {"Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=broker.settings.fhir_base, timeout=30, headers=headers) as c:
        yield c


def _patient(padding: int = 0) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": "Doe"}]}
    if padding:
        patient["extension"] = [{"url": "http://example.org/pad", "valueString": "x" * padding}]
    return patient


def _issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return dict(body["issue"][0])


def _healthy(api: httpx.Client) -> None:
    assert api.get("/metadata").status_code == 200


def test_body_over_the_limit_is_413(api: httpx.Client) -> None:
    too_big = api.post("/Patient", json=_patient(LIMIT))
    assert too_big.status_code == 413
    issue = _issue(too_big)
    assert issue["code"] == "too-long" and "http_max_body_bytes" in issue["diagnostics"]
    assert api.post("/Patient", json=_patient(100)).status_code == 201
    _healthy(api)


def test_streamed_body_without_length_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Patient", "id": "'
        for _ in range(LIMIT // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = api.post("/Patient", content=chunks())
    assert response.status_code == 413
    assert _issue(response)["code"] == "too-long"
    _healthy(api)


def test_bundle_with_too_many_entries(api: httpx.Client) -> None:
    def bundle(n: int) -> dict[str, Any]:
        entry = {"resource": _patient(), "request": {"method": "POST", "url": "Patient"}}
        return {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * n}

    refused = api.post("", json=bundle(11))
    assert refused.status_code == 413
    issue = _issue(refused)
    assert issue["code"] == "too-costly" and issue["expression"] == ["Bundle.entry"]
    assert "at most 10" in issue["diagnostics"]
    assert api.post("", json=bundle(10)).status_code == 200


def test_slow_headers_are_timed_out_while_others_are_served(
    broker: Runtime, api: httpx.Client
) -> None:
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", broker.settings.http_port), timeout=10)
        s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    idle = socket.create_connection(("127.0.0.1", broker.settings.http_port), timeout=10)
    try:
        _healthy(api)  # served while 21 connections dawdle
        for s in [*slow, idle]:
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"request headers not complete within 1 s" in answer
        _healthy(api)
    finally:
        for s in [*slow, idle]:
            s.close()


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "need https"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.1.2.3/hook", "private"),
    ],
)
def test_subscription_endpoint_refused(api: httpx.Client, endpoint: str, words: str) -> None:
    response = api.post("/Subscription", json=subscription("order-created", endpoint))
    assert response.status_code == 422
    issue = _issue(response)
    assert issue["expression"] == ["Subscription.endpoint"]
    assert words in issue["diagnostics"]


def test_subscription_to_loopback_and_allow_list(api: httpx.Client, tmp_path: Path) -> None:
    local = api.post("/Subscription", json=subscription("order-created", "http://localhost:9/h"))
    assert local.status_code == 201, local.text
    db = f"sqlite:///{tmp_path / 'allow.db'}"
    with running_broker(db, subscription_allow="10.0.0.0/8") as runtime:
        c = httpx.Client(base_url=runtime.settings.fhir_base, timeout=30)
        sub = subscription("order-created", "http://10.1.2.3/hook")
        assert c.post("/Subscription", json=sub).status_code == 201
        sub = subscription("order-created", "https://169.254.169.254/")
        assert c.post("/Subscription", json=sub).status_code == 422
        c.close()


def test_connection_cap_answers_503_then_recovers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cap.db'}"
    with running_broker(db, http_max_connections=3, http_header_timeout=1) as runtime:
        port = runtime.settings.http_port
        url = f"{runtime.settings.fhir_base}/metadata"
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            time.sleep(0.2)
            assert httpx.get(url, timeout=10).status_code == 503
        finally:
            for s in idle:
                s.close()
        time.sleep(0.2)
        assert httpx.get(url, timeout=10).status_code == 200


def test_oversized_headers_are_431(broker: Runtime, api: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", broker.settings.http_port), timeout=10) as s:
        s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n")
        for _ in range(63):  # 63 KB of headers: still within the limit of 64 KB
            s.sendall(b"X-Pad: " + b"p" * 1015 + b"\r\n")
        time.sleep(0.3)  # let the server take them in before the chunk that crosses the limit
        s.sendall(b"X-Pad: " + b"p" * 2040 + b"\r\n")  # never finished
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer
    assert b"request headers exceed 65536 bytes" in answer
    headers = {"X-Pad": "p" * 8000}  # large but within the limit
    assert api.get("/metadata", headers=headers).status_code == 200
