"""Who may open an association with the worklist SCP, and how many at once.

A calling AE title is a string the peer chooses, so an allow-list of titles alone lets anyone
in who guesses one. ``PeerRule`` binds an allowed title to source addresses and/or to the
subject of the peer's verified TLS client certificate (IHE ATNA node authentication), from the
TOML array ``[[dicom_peers]]``::

    [[dicom_peers]]
    ae_title = "CT01"
    hosts = ["127.0.0.1"]           # addresses or networks (CIDR); empty: any
    cert_subject = "CN=ct01"        # RFC 4514 subject of the client certificate; empty: any

With rules configured, an association is accepted only when one rule matches all three; others
are rejected with A-ASSOCIATE-RJ "calling AE title not recognised" (rejected-permanent,
service-user, reason 3). The called AE title is checked by pynetdicom (reason 7).

Limits: pynetdicom's ``maximum_associations`` counts every accepted socket, including ones that
never send an A-ASSOCIATE-RQ, so a few dozen idle sockets would lock every modality out until
the ARTIM timer fires. ``AdmissionServer`` therefore refuses a new TCP connection from an address
that already holds ``max_per_peer`` connections (closed at once and logged, before any thread is
started), and the ARTIM timeout is short. ``AdmissionServer`` also defers the TLS handshake to
the association's own thread (pynetdicom performs it in the accept loop, where one silent peer
would stall every other connection).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping
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

    @classmethod
    def from_toml(cls, index: int, raw: Mapping[str, Any]) -> PeerRule:
        unknown = set(raw) - {"ae_title", "hosts", "cert_subject"}
        if unknown or not str(raw.get("ae_title") or "").strip():
            raise ValueError(f"dicom_peers[{index}] needs ae_title; unknown keys {sorted(unknown)}")
        try:
            hosts = tuple(ipaddress.ip_network(str(h), strict=False) for h in raw.get("hosts", []))
        except ValueError as exc:
            raise ValueError(f"dicom_peers[{index}].hosts: {exc}") from None
        return cls(str(raw["ae_title"]).strip(), hosts, str(raw.get("cert_subject") or ""))

    def admits(self, calling: str, host: str, subject: str | None) -> bool:
        if calling != self.ae_title:
            return False
        if self.hosts:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            if not any(address in net for net in self.hosts):
                return False
        return not self.cert_subject or subject == self.cert_subject


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


class AdmissionServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with a per-address cap and a deferred TLS handshake."""

    max_per_peer: int = 0

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.max_per_peer <= 0:
            return True
        host = client_address[0]
        held = sum(1 for a in self.active_associations if _holds_connection(a, host))
        if held >= self.max_per_peer:
            LOG.warning(
                "DICOM connection from %s refused: it holds %d associations "
                "(dicom_max_associations_per_peer)",
                host,
                held,
            )
            return False
        return True


def _holds_connection(assoc: Any, host: str) -> bool:
    """True while ``assoc`` (from ``host``) still has its transport connection (not Sta1)."""
    try:
        same = str(assoc.requestor.address) == host
    except (ValueError, AttributeError):
        return False
    return same and assoc.dul.state_machine.current_state != "Sta1"


@dataclass(frozen=True)
class AssociationLimits:
    """Timers and caps of the SCP (settings ``dicom_*``, docs/security.md)."""

    artim_timeout: float = 10.0  # seconds from TCP accept to A-ASSOCIATE-RQ (pynetdicom acse)
    idle_timeout: float = 60.0  # seconds without a PDU on an established association
    max_associations: int = 32  # all peers; beyond: A-ASSOCIATE-RJ local limit exceeded
    max_per_peer: int = 4  # per source address; beyond: the connection is closed
    require_called_aet: bool = True  # reject a Called AE Title other than ours (reason 7)
