"""The Modality Worklist C-FIND SCP (and Verification) on pynetdicom.

Listener code stays thin: parse the identifier into a :class:`WorklistQuery`, apply the access
policy, ask a :class:`WorklistSource` (built per request by ``source_factory`` so it can open a
store session in the association's thread) for the matching items in their stored DICOM JSON
form, project each onto the requested keys, apply the calling AE's character set, encode it
straight to bytes (``jsonencode``) and write it as a Pending response (``pending``); pydicom
datasets are built only when that fast path cannot encode an answer (ISO 2022 sets), and
pynetdicom sends the responses itself only on Big Endian or deflated contexts. Status
mapping lives here and only here: A900 for identifiers that do not fit the model, FE00 on
C-CANCEL, C001 with an error comment for internal failures, FF01 when a key was ignored for
matching.

Who may associate (called-AE check, ``[[dicom_peers]]`` rules binding titles to addresses and
client certificates, per-peer caps, ARTIM/idle timers, TLS) is decided in ``admission``.
Every accepted socket gets ``TCP_NODELAY`` (see design.md: pynetdicom leaves Nagle on, which
adds delayed-ACK stalls of ~40-100 ms to each small C-FIND exchange).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.dsutils import encode

from fhirmwl.dicom.admission import AdmissionServer, AssociationLimits, PeerRule, check_peer
from fhirmwl.dicom.charset import DEFAULT_CHARSET, parse_charset, prepare_json, python_codec
from fhirmwl.dicom.jsonencode import NotEncodable, encode_item
from fhirmwl.dicom.pending import PendingSender
from fhirmwl.ops.metrics import timed_find
from fhirmwl.worklist.jsoncodec import dataset_from_dict
from fhirmwl.worklist.match import matches
from fhirmwl.worklist.project import project_json
from fhirmwl.worklist.query import (
    SCHEDULED_STATION_AE,
    MatchKind,
    WorklistQuery,
    WorklistQueryError,
)
from fhirmwl.worklist.source import WorklistSource

LOG = logging.getLogger(__name__)

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
VERIFICATION = "1.2.840.10008.1.1"

STATUS_PENDING = 0xFF00
STATUS_PENDING_WARNING = 0xFF01
STATUS_CANCEL = 0xFE00
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_UNABLE_TO_PROCESS = 0xC001
# At most this many responses are held back before being written (see PendingSender.drain).
CANCEL_CHECK_EVERY = 64


@dataclass(frozen=True)
class AccessPolicy:
    """Who may query and what they get.

    ``allowed_calling_aets``: ``None`` accepts any calling AE, otherwise associations from other
    AEs are rejected; ``peers`` bind allowed titles to hosts and certificate subjects
    (``admission.PeerRule``). ``restrict_to_own_station``: every query is limited to the
    calling AE title's own items (a query naming another station matches nothing).
    ``max_responses``: at most that many Pending responses, then ``truncation_status`` (A700
    with an error comment) ends the query.
    ``response_charsets``: Specific Character Set per calling AE (``"ISO_IR 100"``,
    ``"\\ISO 2022 IR 87"``); others get ``default_charset``.
    """

    allowed_calling_aets: frozenset[str] | None = None
    restrict_to_own_station: bool = False
    max_responses: int | None = None
    truncation_status: int = STATUS_OUT_OF_RESOURCES
    response_charsets: Mapping[str, str] = field(default_factory=dict)
    default_charset: str = DEFAULT_CHARSET
    peers: tuple[PeerRule, ...] = ()

    def charset_for(self, calling_aet: str) -> list[str]:
        return parse_charset(self.response_charsets.get(calling_aet, self.default_charset))


def _status(code: int, comment: str, tag: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    if tag is not None:
        ds.OffendingElement = [tag]
    return ds


def _set_nodelay(event: evt.Event) -> None:
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the peer may already be gone
            LOG.debug("could not set TCP_NODELAY", exc_info=True)


class WorklistSCP:
    """``start()`` listens without blocking; ``stop()`` shuts the server down."""

    def __init__(
        self,
        source_factory: Callable[[], WorklistSource],
        ae_title: str = "FHIRMWL",
        host: str = "0.0.0.0",
        port: int = 11112,
        policy: AccessPolicy | None = None,
        shutdown_grace: float = 10.0,
        extensions: Sequence[Any] = (),  # more SOP classes on this AE, e.g. dicom.mpps.MppsScp
        max_associations: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: AssociationLimits | None = None,
    ) -> None:
        self.shutdown_grace = shutdown_grace  # stop(): seconds for open associations to end
        self.find_wrappers: list[Callable[[Any], Any]] = []  # e.g. the audit trail's
        self.extra_handlers: list[tuple[Any, Any]] = []
        self.dimse_wrappers: list[Callable[[Any], Any]] = []  # around the extensions' handlers
        self.tls_failure_hooks: list[Callable[[str, str], None]] = []  # (peer, reason)
        self.extensions = list(extensions)
        self.source_factory = source_factory
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.policy = policy or AccessPolicy()
        self.limits = limits or AssociationLimits()
        self.max_associations = max_associations or self.limits.max_associations
        self.ssl_context = ssl_context
        self._server: Any = None

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(MODALITY_WORKLIST_FIND)
        ae.add_supported_context(VERIFICATION)
        for ext in self.extensions:
            for sop_class in ext.sop_classes:
                ae.add_supported_context(sop_class)
        ae.maximum_associations = self.max_associations
        ae.acse_timeout = self.limits.artim_timeout
        ae.network_timeout = self.limits.idle_timeout
        ae.require_called_aet = self.limits.require_called_aet
        if self.policy.allowed_calling_aets is not None:
            ae.require_calling_aet = sorted(self.policy.allowed_calling_aets)
        return ae

    def start(self) -> None:
        find: Callable[[Any], Any] = timed_find(self._on_find)
        for wrap in self.find_wrappers:
            find = wrap(find)
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, _set_nodelay),
            (evt.EVT_C_FIND, find),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            *self.extra_handlers,
            *(
                (event, self._wrap_dimse(h))
                for ext in self.extensions
                for event, h in ext.handlers()
            ),
            (evt.EVT_REQUESTED, check_peer, [self.policy.peers]),
        ]
        ae = self._build_ae()
        server: Any = ae.make_server(
            (self.host, self.port),
            ssl_context=self.ssl_context,
            evt_handlers=handlers,
            server_class=AdmissionServer,
        )
        server.max_per_peer = self.limits.max_per_peer
        server.tls_failure_hooks = list(self.tls_failure_hooks)
        server.handshake_timeout = self.limits.artim_timeout
        threading.Thread(target=server.serve_forever, name="dicom-accept", daemon=True).start()
        ae._servers.append(server)  # pynetdicom's shutdown() removes it from there
        self._server = server
        self.port = server.server_address[1]
        LOG.info(
            "DICOM worklist SCP %s listening on %s:%s%s",
            self.ae_title,
            self.host,
            self.port,
            " (TLS)" if self.ssl_context else "",
        )

    def _wrap_dimse(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        for wrap in self.dimse_wrappers:
            handler = wrap(handler)
        return handler

    def stop(self) -> None:
        """Stop accepting; let open associations finish (bounded), then abort the rest."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        deadline = time.monotonic() + self.shutdown_grace
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.02)
        for assoc in server.active_associations:
            LOG.warning("DICOM stop: aborting an association still open after the grace period")
            assoc.abort()

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        calling = str(event.assoc.requestor.ae_title).strip()
        LOG.debug(
            "C-FIND from %s (certificate %s)", calling, getattr(event.assoc, "tls_subject", None)
        )
        try:
            q = WorklistQuery.from_dataset(event.identifier)
        except WorklistQueryError as exc:
            LOG.warning("C-FIND from %s refused (A900): %s", calling, exc.message)
            yield _status(STATUS_IDENTIFIER_MISMATCH, exc.message, exc.tag), None
            return
        except Exception as exc:  # undecodable identifier
            LOG.warning("C-FIND from %s: cannot decode identifier: %s", calling, exc)
            yield _status(STATUS_IDENTIFIER_MISMATCH, "cannot decode identifier"), None
            return
        if self.policy.restrict_to_own_station:
            restricted = own_station_query(q, calling)
            if restricted is None:
                LOG.warning("C-FIND from %s for another station refused (no matches)", calling)
                yield 0x0000, None
                return
            q = restricted
        try:
            yield from self._answer(event, q, calling)
        except Exception as exc:
            LOG.exception("C-FIND from %s failed", calling)
            yield _status(STATUS_UNABLE_TO_PROCESS, f"internal error: {type(exc).__name__}"), None

    def _answer(
        self, event: evt.Event, q: WorklistQuery, calling: str
    ) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        pending = STATUS_PENDING_WARNING if q.has_unsupported() else STATUS_PENDING
        charset = self.policy.charset_for(calling)
        codec = python_codec(charset)
        sender = PendingSender(event, pending)
        limit = self.policy.max_responses
        source = self.source_factory()
        count = 0
        for item in source.find_json(q, None if limit is None else limit + 1):
            if count and count % CANCEL_CHECK_EVERY == 0:
                sender.drain()
            if event.is_cancelled:
                LOG.info("C-FIND from %s cancelled after %d responses", calling, count)
                sender.flush()
                yield STATUS_CANCEL, None
                return
            if limit is not None and count >= limit:
                LOG.warning("C-FIND from %s truncated at %d responses", calling, limit)
                comment = f"more than {limit} matches; first {limit} returned"
                sender.flush()
                yield _status(self.policy.truncation_status, comment), None
                return
            response, replaced = prepare_json(project_json(item, q), charset)
            if replaced:
                LOG.warning(
                    "C-FIND to %s: characters not representable in %s replaced in %s",
                    calling,
                    "\\".join(charset),
                    ",".join(sorted(set(replaced))),
                )
            count += 1
            if sender.usable:  # pydicom encodes what jsonencode cannot (ISO 2022 sets, …)
                sender.send(_encoded(response, sender, codec) or _pydicom_encoded(response, sender))
            else:  # Big Endian, deflate: pynetdicom encodes and sends every response
                yield pending, dataset_from_dict(response)
        sender.flush()
        setattr(event, "fhirmwl_items", count)  # noqa: B010 - answers the PendingSender sent
        LOG.info("C-FIND from %s: %d responses", calling, count)


def own_station_query(q: WorklistQuery, calling: str) -> WorklistQuery | None:
    """``q`` limited to the calling AE's own station, or ``None`` when it asks for another.

    A universal or absent Scheduled Station AE Title becomes the calling title; a key that
    admits the calling title (``CT01``, ``CT*``) is narrowed to it; any other key is refused.
    """
    current = q.sps_key(SCHEDULED_STATION_AE)
    if current is None or current.kind is MatchKind.UNIVERSAL:
        return q.with_station(calling)
    probe = Dataset()
    probe.ScheduledStationAETitle = calling
    if not matches(WorklistQuery(keys={SCHEDULED_STATION_AE: current}), probe):
        return None
    return q.with_station(calling, force=True)


def _encoded(response: dict[str, Any], sender: PendingSender, codec: str | None) -> bytes | None:
    if codec is None:
        return None
    try:
        return encode_item(response, sender.implicit, codec)
    except NotEncodable:
        return None


def _pydicom_encoded(response: dict[str, Any], sender: PendingSender) -> bytes:
    """What pynetdicom would send for the item: its encoder over a pydicom dataset."""
    encoded = encode(dataset_from_dict(response), sender.implicit, True)
    if encoded is None:
        raise ValueError("the response identifier cannot be encoded")
    return encoded
