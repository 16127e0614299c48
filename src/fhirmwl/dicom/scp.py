"""The Modality Worklist C-FIND SCP (and Verification) on pynetdicom.

Listener code stays thin: parse the identifier into a :class:`WorklistQuery`, apply the access
policy, ask a :class:`WorklistSource` (built per request by ``source_factory`` so it can open a
store session in the association's thread) for the matching items in their stored DICOM JSON
form, project each onto the requested keys, apply the calling AE's character set, encode it
straight to bytes (``jsonencode``) and queue it as a Pending response (``pending``); pydicom
datasets are built only when that fast path cannot encode an answer (ISO 2022 sets). Status
mapping lives here and only here: A900 for identifiers that do not fit the model, FE00 on
C-CANCEL, C001 with an error comment for internal failures, FF01 when a key was ignored for
matching.

Every accepted socket gets ``TCP_NODELAY`` (see design.md: pynetdicom leaves Nagle on, which
adds delayed-ACK stalls of ~40-100 ms to each small C-FIND exchange).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from fhirmwl.dicom.charset import DEFAULT_CHARSET, parse_charset, prepare_json, python_codec
from fhirmwl.dicom.jsonencode import NotEncodable, encode_item
from fhirmwl.dicom.pending import PendingSender
from fhirmwl.worklist.jsoncodec import dataset_from_dict
from fhirmwl.worklist.project import project_json
from fhirmwl.worklist.query import WorklistQuery, WorklistQueryError
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
# Responses queued between two looks for a C-CANCEL (see PendingSender.drain).
CANCEL_CHECK_EVERY = 64


@dataclass(frozen=True)
class AccessPolicy:
    """Who may query and what they get.

    ``allowed_calling_aets``: ``None`` accepts any calling AE, otherwise associations from other
    AEs are rejected. ``restrict_to_own_station``: a query whose Scheduled Station AE Title is
    universal or absent is limited to the calling AE title. ``max_responses``: at most that many
    Pending responses, then ``truncation_status`` (A700 with an error comment) ends the query.
    ``response_charsets``: Specific Character Set per calling AE (``"ISO_IR 100"``,
    ``"\\ISO 2022 IR 87"``); others get ``default_charset``.
    """

    allowed_calling_aets: frozenset[str] | None = None
    restrict_to_own_station: bool = False
    max_responses: int | None = None
    truncation_status: int = STATUS_OUT_OF_RESOURCES
    response_charsets: Mapping[str, str] = field(default_factory=dict)
    default_charset: str = DEFAULT_CHARSET

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
        max_associations: int = 32,
    ) -> None:
        self.source_factory = source_factory
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.policy = policy or AccessPolicy()
        self.max_associations = max_associations
        self._server: Any = None

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(MODALITY_WORKLIST_FIND)
        ae.add_supported_context(VERIFICATION)
        ae.maximum_associations = self.max_associations
        if self.policy.allowed_calling_aets is not None:
            ae.require_calling_aet = sorted(self.policy.allowed_calling_aets)
        return ae

    def start(self) -> None:
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, _set_nodelay),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
        ]
        ae = self._build_ae()
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        LOG.info("DICOM worklist SCP %s listening on %s:%s", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        calling = str(event.assoc.requestor.ae_title).strip()
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
            q = q.with_station(calling)
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
            encoded = _encoded(response, sender, codec)
            if encoded is None:  # ISO 2022, Big Endian, …: pydicom encodes it
                sender.flush()
                yield pending, dataset_from_dict(response)
            else:
                sender.send(encoded)
        sender.flush()
        LOG.info("C-FIND from %s: %d responses", calling, count)


def _encoded(response: dict[str, Any], sender: PendingSender, codec: str | None) -> bytes | None:
    if codec is None or not sender.usable:
        return None
    try:
        return encode_item(response, sender.implicit, codec)
    except NotEncodable:
        return None
