"""Secure defaults at start-up: refuse to expose patient data in clear and unauthenticated.

``security_posture(settings)`` describes, per listener, whether it is reachable beyond this host,
whether it runs TLS and whether requests are authenticated; ``startup_problems(settings)`` lists
what must be configured before ``serve`` may start. A listener bound to a loopback address is
only reachable from this host, so the one-command demo on 127.0.0.1 needs nothing. Any other
address needs TLS or authentication on every listener it opens, unless the operator says
``--insecure``. Authentication is configured by the OAuth settings (``auth``, ``auth_jwks``,
``auth_issuer``, docs/auth.md); this module only reads them, with ``getattr`` so it works whether
or not those settings exist in this build. For MLLP and DICOM, mutual TLS is the authentication
(IHE ATNA node authentication), so those listeners need TLS with required client certificates,
or for DICOM ``[[dicom_peers]]`` rules that each bind a title to hosts or a certificate, to
count as authenticated.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from fhirmwl.errors import BadRequest
from fhirmwl.security.tls import server_context, tls_enabled


@dataclass(frozen=True)
class ListenerPosture:
    name: str
    exposed: bool  # reachable from other hosts
    tls: bool
    authenticated: bool

    @property
    def safe(self) -> bool:
        return not self.exposed or self.tls or self.authenticated


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; ``0.0.0.0``/``::`` are not loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_auth_on(settings: Any) -> bool:
    """Bearer-token authentication configured (settings added by the OAuth feature)."""
    names = ("auth", "auth_jwks", "auth_issuer")
    return any(str(getattr(settings, name, "") or "") for name in names)


def _node_auth(settings: Any, listener: str) -> bool:
    if tls_enabled(settings, listener) and settings.tls_require_client_cert:
        return True
    if listener != "dicom":
        return False
    from fhirmwl.dicom.admission import parse_peer_rules

    rules = parse_peer_rules(settings.extra.get("dicom_peers"))
    # a rule naming only a title admits anyone who calls with it: not authentication
    return bool(rules) and all(rule.hosts or rule.cert_subject for rule in rules)


def security_posture(settings: Any) -> list[ListenerPosture]:
    """The posture of every listener ``serve`` will open (HTTP, MLLP, DICOM)."""
    exposed = not is_loopback(settings.host)
    out = []
    for name in ("http", "mllp", "dicom"):
        if not getattr(settings, name, True):
            continue
        auth = http_auth_on(settings) if name == "http" else _node_auth(settings, name)
        out.append(ListenerPosture(name, exposed, tls_enabled(settings, name), auth))
    return out


def tls_problems(settings: Any) -> list[str]:
    """TLS settings that cannot be loaded (missing file, key not matching, no client CA)."""
    if not settings.tls_cert:
        return ["tls_key is set but tls_cert is not"] if settings.tls_key else []
    try:
        server_context(
            settings.tls_cert,
            settings.tls_key,
            settings.tls_client_ca,
            settings.tls_require_client_cert,
        )
    except BadRequest as exc:
        return [exc.message]
    return []


def startup_problems(settings: Any) -> list[str]:
    """Why ``serve`` must not start as configured (empty when it may)."""
    problems = tls_problems(settings)
    if problems or settings.insecure:
        return problems
    for p in security_posture(settings):
        if not p.safe:
            problems.append(
                f"the {p.name.upper()} listener on {settings.host} would accept anyone in clear"
            )
    if problems:
        problems.append(
            "configure TLS (--tls-cert FILE --tls-key FILE; fhirmwl dev-certs makes test ones) "
            "or authentication (--auth-jwks/--auth-issuer for HTTP, --tls-require-client-cert "
            "for MLLP and DICOM), listen on 127.0.0.1, or pass --insecure to accept the risk"
        )
    return problems
