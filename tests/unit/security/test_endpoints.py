"""Subscription endpoint rules (SSRF guard) with a fixed resolver: every address counts."""

from __future__ import annotations

import ipaddress

import pytest

from fhirmwl.security.endpoints import Address, EndpointPolicy

HOSTS = {
    "metadata.internal": ["169.254.169.254"],
    "ris.hospital.example": ["10.20.0.5"],
    "receiver.example.org": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "sneaky.example.org": ["93.184.216.34", "192.168.1.10"],
    "localhost": ["127.0.0.1", "::1"],
}


def fake_resolver(host: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host not in HOSTS:
        raise OSError("Name or service not known")
    return [ipaddress.ip_address(a) for a in HOSTS[host]]


def policy(allow: str = "") -> EndpointPolicy:
    return EndpointPolicy(allow, resolver=fake_resolver)


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.org/hook",
        "http://localhost:9000/hook",
        "http://127.0.0.1/hook",
        "https://[::1]/hook",
    ],
)
def test_accepted(url: str) -> None:
    assert policy().problem(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://receiver.example.org/hook", "need https"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://metadata.internal/", "link-local"),
        ("https://ris.hospital.example/hook", "private"),
        ("https://sneaky.example.org/hook", "192.168.1.10"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://0.0.0.0/hook", "reserved"),
        ("https://100.64.0.1/hook", "non-global"),
        ("https://nowhere.invalid/hook", "cannot be resolved"),
        ("ftp://receiver.example.org/hook", "absolute http(s) URL"),
        ("https:///hook", "absolute http(s) URL"),
    ],
)
def test_refused(url: str, words: str) -> None:
    found = policy().problem(url)
    assert found is not None and words in found


def test_allow_list_by_network_and_host_name() -> None:
    assert policy("10.0.0.0/8").problem("https://ris.hospital.example/hook") is None
    assert policy("10.0.0.0/8").problem("http://ris.hospital.example/hook") is None
    assert policy("ris.hospital.example").problem("http://ris.hospital.example/x") is None
    assert policy(["192.168.1.10"]).problem("https://sneaky.example.org/") is None
    # an allowed network does not open the metadata address
    assert policy("10.0.0.0/8").problem("https://metadata.internal/") is not None
