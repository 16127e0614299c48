"""Where a rest-hook Subscription may send patient data (server-side request forgery guard).

A Subscription with ``content=full-resource`` receives every new order, so its endpoint is a
trust decision. Rules, checked when a Subscription is created or updated (422 OperationOutcome
on ``Subscription.endpoint``) and again before every delivery (DNS may have changed):

* the host name is resolved (at most ``RESOLVE_TIMEOUT`` seconds) and **every** address is
  checked, so a name that resolves to an internal address is treated like that address;
* loopback targets (this host) may use ``http``; everything else must be ``https``;
* link-local (169.254.0.0/16, where cloud metadata services live, and fe80::/10), private
  (RFC 1918, fc00::/7), shared, reserved, multicast and unspecified addresses are refused;
* the ``subscription_allow`` setting lists host names, addresses or networks (CIDR) that are
  exempt from both rules (a receiver on the hospital network, a plain-http test sink).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

from fhirmwl.fhir.outcome import issue

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[Address]]


_RESOLVER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="resolve")
RESOLVE_TIMEOUT = 3.0  # seconds; the check runs inside a write transaction


def resolve(host: str) -> list[Address]:
    """Every address ``host`` resolves to (an address literal resolves to itself).

    ``getaddrinfo`` has no timeout of its own, so it runs on a small pool and is abandoned
    after ``RESOLVE_TIMEOUT`` (the endpoint is then refused as unresolvable)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _RESOLVER.submit(socket.getaddrinfo, host, None, proto=socket.IPPROTO_TCP)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    except FutureTimeout:
        raise OSError(f"no answer within {RESOLVE_TIMEOUT:g} s") from None
    return sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}, key=str)


class EndpointPolicy:
    def __init__(self, allow: str | Iterable[str] = "", resolver: Resolver = resolve) -> None:
        items = allow.split(",") if isinstance(allow, str) else list(allow)
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))
        self.resolver = resolver

    def _allowed(self, address: Address) -> bool:
        return any(address in net for net in self.networks)

    def problem(self, url: str) -> str | None:
        """Why ``url`` may not receive notifications, or ``None`` when it may."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme not in ("http", "https") or not host:
            return "Subscription.endpoint must be an absolute http(s) URL"
        if host in self.hosts:
            return None
        try:
            addresses = self.resolver(host)
        except (OSError, UnicodeError) as exc:
            return f"endpoint host {host!r} cannot be resolved: {exc}"
        if not addresses:
            return f"endpoint host {host!r} has no address"
        if all(self._allowed(a) or a.is_loopback for a in addresses):
            return None
        if parts.scheme != "https":
            return (
                f"endpoint {host!r} is not on this host: notifications carry patient data and "
                "need https (or list the host in subscription_allow)"
            )
        for address in addresses:
            kind = _special(address)
            if kind and not self._allowed(address):
                return (
                    f"endpoint {host!r} resolves to {address}, a {kind} address; refused unless "
                    "listed in subscription_allow"
                )
        return None


def _special(address: Address) -> str | None:
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_loopback:
        return None
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-global"
    return None


def endpoint_validator(policy: EndpointPolicy) -> Callable[..., list[dict[str, Any]]]:
    """A ``ResourceService`` validator refusing Subscriptions whose endpoint ``policy`` rejects."""

    def validate(tx: Any, rtype: str, res: dict[str, Any]) -> list[dict[str, Any]]:
        if rtype != "Subscription" or not res.get("endpoint"):
            return []
        found = policy.problem(str(res["endpoint"]))
        return [issue("error", "security", found, "Subscription.endpoint")] if found else []

    return validate


def install(services: Any) -> None:
    """Register the endpoint check on Subscription writes and for the dispatcher."""
    policy = EndpointPolicy(services.settings.subscription_allow)
    services.endpoint_policy = policy
    services.resources.validators.append(endpoint_validator(policy))
