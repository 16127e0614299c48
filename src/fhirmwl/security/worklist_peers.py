"""C-FIND's access rules on the HTTP worklist forms: which DICOM peer an HTTP request speaks for.

C-FIND decides per calling AE title: ``dicom_allowed_aets`` and ``[[dicom_peers]]`` say which
titles may query (and from where), ``dicom_restrict_station`` limits each title to its own
station's items. The HTTP forms (``Task/$mwl-query`` in both representations, the DICOMweb
MWL-RS and UPS-RS searches) answer from the same worklist, so they must not be a way around
those rules. They apply them to the title an HTTP request acts as:

* authentication on: a title that a ``[[dicom_peers]]`` rule binds to the token's client
  (``http_clients`` lists the token's ``client_id``, else ``azp``, else ``sub``) and whose
  ``hosts`` admit the request's source address; a client bound to several titles names one in
  the ``X-Calling-AE-Title`` header. The token is the credential: ``cert_subject`` is a DICOM
  TLS credential and is not asked of HTTP clients.
* authentication off (the loopback demo, or ``insecure``): the ``X-Calling-AE-Title`` header,
  as unverified as the calling AE title of an association and checked like one (title and
  source address); a rule that names credentials an anonymous request cannot show
  (``cert_subject``, ``http_clients``) admits nobody over HTTP.

The title must then be one ``dicom_allowed_aets`` lists (when set), and the query is narrowed as
C-FIND narrows it (``dicom.scp.own_station_query``: a query for another station matches
nothing). A request that cannot be tied to an admitted title gets 403. Without any of the three
settings nothing is checked or narrowed: the HTTP forms are open to every client the API lets
in, as C-FIND is open to every AE. Pure: no IO, the caller passes address, claims and header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirmwl.dicom.scp import AccessPolicy, own_station_query
from fhirmwl.errors import BadRequest
from fhirmwl.security.access import Forbidden
from fhirmwl.worklist.query import WorklistQuery

HEADER = "X-Calling-AE-Title"
MAX_AE_LENGTH = 16


def token_client(claims: Mapping[str, Any] | None) -> str | None:
    """The client a token was issued to: ``client_id`` (RFC 9068), ``azp`` (OIDC), ``sub``."""
    for name in ("client_id", "azp", "sub"):
        value = (claims or {}).get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _declared(raw: str | None) -> str | None:
    title = (raw or "").strip()
    if not title:
        return None
    if len(title) > MAX_AE_LENGTH or "\\" in title or not title.isprintable():
        raise BadRequest(f"{HEADER} must be an AE title (1-16 characters, no backslash)")
    return title


@dataclass(frozen=True)
class WorklistPeers:
    """The C-FIND ``AccessPolicy`` seen from HTTP; ``authenticated``: bearer tokens are on."""

    policy: AccessPolicy
    authenticated: bool

    @property
    def active(self) -> bool:
        p = self.policy
        return bool(p.allowed_calling_aets or p.peers or p.restrict_to_own_station)

    def title(self, host: str, claims: Mapping[str, Any] | None, header: str | None) -> str | None:
        """The AE title the request acts as; ``None`` when no rule is configured.

        Raises ``Forbidden`` when C-FIND would not answer that peer and ``BadRequest`` for a
        header that is not an AE title."""
        if not self.active:
            return None
        declared = _declared(header)
        if self.authenticated:
            title = self._bound_title(host, token_client(claims), declared)
        else:
            title = self._anonymous_title(host, declared)
        allowed = self.policy.allowed_calling_aets
        if allowed and title not in allowed:
            raise Forbidden(f"AE title {title!r} is not in dicom_allowed_aets")
        return title

    def _bound_title(self, host: str, client: str | None, declared: str | None) -> str:
        titles = sorted(
            {
                r.ae_title
                for r in self.policy.peers
                if client and client in r.http_clients and r.admits_host(host)
            }
        )
        if declared is not None:
            if declared not in titles:
                raise Forbidden(
                    f"client {client!r} is not bound to AE title {declared!r} from {host} "
                    "([[dicom_peers]] http_clients and hosts)"
                )
            return declared
        if len(titles) == 1:
            return titles[0]
        if not titles:
            raise Forbidden(
                f"the worklist access rules apply and client {client!r} is bound to no AE title "
                f"from {host} ([[dicom_peers]] http_clients and hosts)"
            )
        raise Forbidden(f"client {client!r} acts as several AE titles: name one in {HEADER}")

    def _anonymous_title(self, host: str, declared: str | None) -> str:
        if declared is None:
            raise Forbidden(
                f"the worklist access rules apply: name the calling AE title in {HEADER}"
            )
        peers = self.policy.peers
        if peers and not any(
            r.ae_title == declared
            and r.admits_host(host)
            and not r.cert_subject
            and not r.http_clients
            for r in peers
        ):
            raise Forbidden(f"no [[dicom_peers]] rule admits AE title {declared!r} from {host}")
        return declared

    def narrow(self, q: WorklistQuery, title: str | None) -> WorklistQuery | None:
        """``q`` as C-FIND would run it for ``title``; ``None``: it matches nothing."""
        if title is None or not self.policy.restrict_to_own_station:
            return q
        return own_station_query(q, title)
