"""Who may open an association with the worklist SCP, and how many at once.

A calling AE title is a string the peer chooses, so an allow-list of titles alone lets anyone
in who guesses one. ``PeerRule`` binds an allowed title to source addresses and/or to the
subject of the peer's verified TLS client certificate (IHE ATNA node authentication), from the
TOML array ``[[dicom_peers]]``::

    [[dicom_peers]]
    ae_title = "CT01"
    hosts = ["127.0.0.1"]           # addresses or networks (CIDR); empty: any
    cert_subject = "CN=ct01"        # RFC 4514 subject of the client certificate; empty: any
    http_clients = ["ct01-app"]     # OAuth clients that speak for this title over HTTP

With rules configured, an association is accepted only when one rule matches all three; others
are rejected with A-ASSOCIATE-RJ "calling AE title not recognised" (rejected-permanent,
service-user, reason 3). The called AE title is checked by pynetdicom (reason 7).

Limits: pynetdicom's ``maximum_associations`` counts every accepted socket, including ones that
never send an A-ASSOCIATE-RQ, so a few dozen idle sockets would lock every modality out until
the ARTIM timer fires. ``AdmissionServer`` therefore refuses a new TCP connection from an address
that already holds ``max_per_peer`` connections (closed at once and logged, before any thread is
started), and the ARTIM timeout is short. ``AdmissionServer`` also moves the TLS handshake to
the connection's own thread with a timeout (pynetdicom performs it in the accept loop, where one
silent peer would stall every other connection); a failed handshake is logged and closed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from fhirmwl.security.tls import peer_subject

LOG = logging.getLogger(__name__)

REJECTED_PERMANENT, REJECTED_TRANSIENT = 0x01, 0x02
SOURCE_SERVICE_USER, SOURCE_PRESENTATION = 0x01, 0x03
REASON_CALLING_AE_NOT_RECOGNISED = 0x03
REASON_LOCAL_LIMIT_EXCEEDED = 0x02

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PeerRule:
    ae_title: str
    hosts: tuple[Network, ...] = ()
    cert_subject: str = ""
    # OAuth client ids (token ``client_id``/``azp``/``sub``) that act as this title on the HTTP
    # worklist forms (``security.worklist_peers``); C-FIND ignores them.
    http_clients: tuple[str, ...] = ()

    @classmethod
    def from_toml(cls, index: int, raw: Mapping[str, Any]) -> PeerRule:
        unknown = set(raw) - {"ae_title", "hosts", "cert_subject", "http_clients"}
        if unknown or not str(raw.get("ae_title") or "").strip():
            raise ValueError(f"dicom_peers[{index}] needs ae_title; unknown keys {sorted(unknown)}")
        try:
            hosts = tuple(ipaddress.ip_network(str(h), strict=False) for h in raw.get("hosts", []))
        except ValueError as exc:
            raise ValueError(f"dicom_peers[{index}].hosts: {exc}") from None
        clients = raw.get("http_clients", [])
        if isinstance(clients, str) or not all(isinstance(c, str) and c for c in clients):
            raise ValueError(f"dicom_peers[{index}].http_clients must be a list of client ids")
        return cls(
            str(raw["ae_title"]).strip(),
            hosts,
            str(raw.get("cert_subject") or ""),
            tuple(clients),
        )

    def admits(self, calling: str, host: str, subject: str | None) -> bool:
        if calling != self.ae_title or not self.admits_host(host):
            return False
        return not self.cert_subject or subject == self.cert_subject

    def admits_host(self, host: str) -> bool:
        if not self.hosts:
            return True
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d on a dual-stack bind
        return any((mapped or address) in net for net in self.hosts)


def parse_peer_rules(raw: Iterable[Mapping[str, Any]] | None) -> tuple[PeerRule, ...]:
    return tuple(PeerRule.from_toml(i, r) for i, r in enumerate(raw or []))


def association_subject(assoc: Any) -> str | None:
    """The verified client certificate subject of an association's socket, if any."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    return peer_subject(sock) if hasattr(sock, "getpeercert") else None


def check_peer(event: Any, rules: tuple[PeerRule, ...]) -> None:
    """EVT_REQUESTED handler: reject the A-ASSOCIATE-RQ unless a ``PeerRule`` admits it."""
    assoc = event.assoc
    calling = str(assoc.requestor.primitive.calling_ae_title).strip()
    host = assoc.requestor.address
    subject = association_subject(assoc)
    assoc.tls_subject = subject  # the peer identity, for the service handlers
    if subject is not None:
        LOG.info("DICOM association from %s (%s): client certificate %s", calling, host, subject)
    if not rules or any(rule.admits(calling, host, subject) for rule in rules):
        return
    LOG.warning(
        "DICOM association from %s at %s (certificate %s) rejected: no dicom_peers rule admits it",
        calling,
        host,
        subject or "none",
    )
    assoc.acse.send_reject(
        REJECTED_PERMANENT, SOURCE_SERVICE_USER, REASON_CALLING_AE_NOT_RECOGNISED
    )
    assoc.kill()  # as pynetdicom's own rejections: lets the DUL send the A-ASSOCIATE-RJ first


@dataclass
class _Admitted:
    host: str
    sock: Any
    since: float
    seen: bool = False  # its association thread has been seen running


class AdmissionServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with a per-address cap and the TLS handshake moved out of
    the accept loop into the connection's own thread, bounded by ``handshake_timeout``."""

    max_per_peer: int = 0
    handshake_timeout: float = 10.0
    request_queue_size = 64  # listen backlog (socketserver's default of 5 drops bursts)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._admitted: list[_Admitted] = []
        self._lock = threading.Lock()
        # Called with (peer address, reason) when a TLS handshake is refused (the audit trail).
        self.tls_failure_hooks: list[Callable[[str, str], None]] = []
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        host = str(client_address[0])
        with self._lock:
            try:
                held = self._held(host)
            except Exception:  # noqa: BLE001 - an exception here would end the accept loop
                LOG.exception("DICOM connection from %s: admission check failed", host)
                return False
            if self.max_per_peer > 0 and held >= self.max_per_peer:
                LOG.warning(
                    "DICOM connection from %s refused: it holds %d connections "
                    "(dicom_max_associations_per_peer)",
                    host,
                    held,
                )
                return False
            self._admitted.append(_Admitted(host, request, time.monotonic()))
        return True

    def _held(self, host: str) -> int:
        """Connections of ``host`` still open: running associations, and sockets accepted but
        not yet associated (in the TLS handshake, or the thread is starting)."""
        running = {id(getattr(a.dul.socket, "socket", None)) for a in self.active_associations}
        now, keep = time.monotonic(), []
        for entry in self._admitted:
            if id(entry.sock) in running:
                entry.seen = True
                keep.append(entry)
            elif (
                not entry.seen
                and now - entry.since < self.handshake_timeout + 1
                and entry.sock.fileno() != -1
            ):
                keep.append(entry)
        self._admitted = keep
        return sum(1 for e in keep if e.host == host)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(self.handshake_timeout)
                request.do_handshake()
                request.settimeout(None)
            except (OSError, ValueError) as exc:
                LOG.warning("DICOM TLS handshake with %s failed: %s", client_address[0], exc)
                for hook in self.tls_failure_hooks:
                    hook(f"{client_address[0]}:{client_address[1]}", str(exc)[:200])
                self.shutdown_request(request)
                return
        super().finish_request(request, client_address)


@dataclass(frozen=True)
class AssociationLimits:
    """Timers and caps of the SCP (settings ``dicom_*``, docs/security.md)."""

    artim_timeout: float = 10.0  # seconds from TCP accept to A-ASSOCIATE-RQ (pynetdicom acse)
    idle_timeout: float = 60.0  # seconds without a PDU on an established association
    max_associations: int = 32  # all peers; beyond: A-ASSOCIATE-RJ local limit exceeded
    max_per_peer: int = 4  # per source address; beyond: the connection is closed
    require_called_aet: bool = True  # reject a Called AE Title other than ours (reason 7)
