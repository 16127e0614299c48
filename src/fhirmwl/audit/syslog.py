"""Export of the audit trail to an audit record repository over syslog.

``serve --audit-syslog udp://host:514`` (or ``tcp://``, ``tls://``) sends every AuditEvent, in
order, as an RFC 5424 message whose MSG is the DICOM PS3.15 audit message XML (MSGID
``IHE+RFC-3881``, as IHE ATNA and DICOM audit repositories expect). TCP and TLS use RFC 5425
octet-counting framing; UDP one datagram per event (RFC 5426). The exporter reads from the
append-only audit table and keeps its position per destination in ``audit_export``, so a
repository that is down delays export but loses nothing, and a restart resumes where it stopped.
Delivery is at least once (a crash between send and cursor update repeats a batch). Python's
standard library has no RFC 5424/5425 client (``logging.handlers.SysLogHandler`` writes the
older BSD format without octet counting), hence this small one.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from fhirmwl.audit.codec import unpack_content_bytes
from fhirmwl.audit.events import AuditRecord, Code, to_dicom_xml

if TYPE_CHECKING:
    from fhirmwl.services.container import Services

log = logging.getLogger("fhirmwl.audit")
PRI = 10 * 8 + 5  # facility authpriv (10), severity notice (5)
MSGID = "IHE+RFC-3881"


def _code(concept: dict[str, Any] | None) -> Code:
    coding = ((concept or {}).get("coding") or [{}])[0]
    return (coding.get("system", ""), coding.get("code", ""), coding.get("display", ""))


def record_from_fhir(event: dict[str, Any]) -> AuditRecord:
    """The inverse of ``to_fhir`` for what the DICOM rendering needs."""
    requestor: dict[str, Any] = next(
        (a for a in event.get("agent") or [] if a.get("requestor")), {}
    )
    patients, entities, query = [], [], None
    details: dict[str, str] = {}
    for entity in event.get("entity") or []:
        ref = (entity.get("what") or {}).get("reference", "")
        if ref.startswith("Patient/"):
            patients.append(ref.split("/", 1)[1])
        elif ref:
            entities.append(ref)
        if "query" in entity:
            query = base64.b64decode(entity["query"])
        for d in entity.get("detail") or []:
            details[(d.get("type") or {}).get("text", "")] = str(d.get("valueString", ""))
    return AuditRecord(
        recorded=event.get("recorded", ""),
        door=details.get("door", ""),
        action=event.get("action", "E"),
        category=_code((event.get("category") or [None])[0]),
        code=_code(event.get("code")),
        outcome=((event.get("outcome") or {}).get("code") or {}).get("code", "0"),
        outcome_text=(((event.get("outcome") or {}).get("detail") or [{}])[0]).get("text", ""),
        agent_id=((requestor.get("who") or {}).get("identifier") or {}).get("value", ""),
        agent_network=requestor.get("networkString", ""),
        observer=((event.get("source") or {}).get("observer") or {}).get("display", "fhirmwl"),
        patients=patients,
        entities=entities,
        query=query,
        details=details,
    )


def syslog_message(event: dict[str, Any], hostname: str) -> bytes:
    """One RFC 5424 message (with a UTF-8 BOM before the XML, as RFC 5424 §6.4 asks)."""
    stamp = event.get("recorded") or datetime.now(UTC).isoformat(timespec="milliseconds")
    header = f"<{PRI}>1 {stamp} {hostname[:255] or '-'} fhirmwl - {MSGID} - "
    return (
        header.encode("ascii", "replace") + b"\xef\xbb\xbf" + to_dicom_xml(record_from_fhir(event))
    )


class SyslogSender:
    """One connection to a repository; ``send`` raises OSError when it is unreachable."""

    def __init__(self, url: str, ca_file: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname:
            raise ValueError(f"audit syslog URL must be udp://, tcp:// or tls://host:port: {url}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (6514 if parts.scheme == "tls" else 514)
        self.ca_file = ca_file
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.scheme == "udp":
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock = socket.create_connection((self.host, self.port), timeout=10)
        if self.scheme == "tls":
            context = ssl.create_default_context(cafile=self.ca_file or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            sock = context.wrap_socket(sock, server_hostname=self.host)
        return sock

    def send(self, message: bytes) -> None:
        if self._sock is None:
            self._sock = self._connect()
        try:
            if self.scheme == "udp":
                self._sock.sendto(message[:65000], (self.host, self.port))
            else:
                self._sock.sendall(str(len(message)).encode() + b" " + message)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class AuditExporter:
    """Background export from the audit table (started when ``audit_syslog`` is set)."""

    name = "audit_syslog"

    def __init__(self, services: Services, batch: int = 100) -> None:
        settings = services.settings
        self.services = services
        self.destination = settings.audit_syslog
        self.sender = SyslogSender(self.destination, settings.audit_syslog_ca)
        self.batch = batch
        self.hostname = socket.gethostname()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="audit-syslog", daemon=True)

    def start(self) -> None:
        with self.services.store.write() as tx:
            row = tx.conn.execute(
                "SELECT cursor FROM audit_export WHERE destination = ?", (self.destination,)
            ).fetchone()
            if row is None:
                tx.conn.execute(
                    "INSERT INTO audit_export (destination, cursor) VALUES (?, 0)",
                    (self.destination,),
                )
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout=15)
        self.sender.close()

    def export_once(self) -> int:
        """Send the next batch; returns how many were sent (0 when nothing is pending)."""
        with self.services.store.read() as tx:
            (cursor,) = tx.conn.execute(
                "SELECT cursor FROM audit_export WHERE destination = ?", (self.destination,)
            ).fetchone()
            rows = tx.conn.execute(
                "SELECT id, content FROM audit_event WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, self.batch),
            ).fetchall()
        sent = 0
        try:
            for event_id, content in rows:
                self.sender.send(
                    syslog_message(orjson.loads(unpack_content_bytes(content)), self.hostname)
                )
                sent = int(event_id)
        finally:
            error = None if sent or not rows else "repository unreachable"
            with self.services.store.write() as tx:
                if sent:
                    tx.conn.execute(
                        "UPDATE audit_export SET cursor = ?, error_count = 0, last_error = NULL "
                        "WHERE destination = ? AND cursor < ?",
                        (sent, self.destination, sent),
                    )
                elif error:
                    tx.conn.execute(
                        "UPDATE audit_export SET error_count = error_count + 1, last_error = ? "
                        "WHERE destination = ?",
                        (error, self.destination),
                    )
        return len(rows) if sent else 0

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.export_once():
                    backoff = 1.0
                    continue
                self._wake.wait(0.5)
            except OSError as exc:
                log.warning("audit export to %s failed: %s", self.destination, exc)
                self._wake.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            except Exception:  # noqa: BLE001 - keep exporting
                log.exception("audit export failed")
                self._wake.wait(backoff)
            self._wake.clear()
