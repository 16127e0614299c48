"""Audit at the HL7 v2 and DICOM doors: thin wrappers around their handlers.

The MLLP wrapper opens the access context (sender, MSH-10, message type, patient) before the
intake runs, so an applied message's event is written in its transaction; refusals, rejections
and retransmissions are queued with the ACK code as outcome. The C-FIND wrapper queues one DICOM
Query event (DCM 110112) per request with the calling and called AE titles, the peer, the client
certificate subject where TLS authenticated it, the identifier (base64, as DICOM audit does) and
the number of items returned. Association rejections become security events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from fhirmwl.audit import events as ev
from fhirmwl.audit.recorder import CURRENT, AccessContext, AuditWriter
from fhirmwl.dicom.tally import FindTally

MWL_FIND = "1.2.840.10008.5.1.4.31"


def _msh_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    head = raw.lstrip(b"\x0b\r\n").split(b"\r", 1)[0]
    if not head.startswith(b"MSH") or len(head) < 8:
        return [], b"^"
    return head.split(head[3:4]), head[4:5] or b"^"


def _pid3(raw: bytes, sep: bytes, comp: bytes) -> str:
    for segment in raw.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"PID"):
            fields = segment.split(sep)
            if len(fields) > 3:
                return fields[3].split(b"~")[0].split(comp)[0].decode("latin-1")[:64]
    return ""


def mllp_context(raw: bytes, peer: Any) -> AccessContext:
    fields, comp = _msh_fields(raw)

    def field(n: int) -> str:  # MSH-n (MSH-1 is the separator itself)
        return fields[n - 1].decode("latin-1")[:64] if len(fields) > n - 1 else ""

    message_type = "^".join(field(9).split(comp.decode("latin-1"))[:2])
    category = ev.PATIENT_RECORD if message_type.startswith("ADT") else ev.ORDER_RECORD
    sender = "^".join(x for x in (field(3).split(comp.decode())[0], field(4)) if x)
    sep = raw.lstrip(b"\x0b\r\n")[3:4] or b"|"
    pid = _pid3(raw, sep, comp)
    return AccessContext(
        door="mllp",
        action="E",
        category=category,
        code=category,
        agent_id=sender or "unknown-sender",
        agent_network=f"{getattr(peer, 'host', '')}:{getattr(peer, 'port', '')}",
        agent_cert=str(getattr(peer, "tls_subject", "") or ""),
        details={"msh10": field(10), "message_type": message_type, "patient_id": pid},
    )


def _ack_code(ack: bytes) -> str:
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA") and len(segment) > 5:
            return segment[4:6].decode("ascii", "replace")
    return "none"


def audited_mllp(
    handle: Callable[[bytes, Any], bytes], writer: AuditWriter
) -> Callable[[bytes, Any], bytes]:
    def wrapped(raw: bytes, peer: Any) -> bytes:
        ctx = mllp_context(raw, peer)
        token = CURRENT.set(ctx)
        ack = b""
        try:
            ack = handle(raw, peer)
            return ack
        finally:
            CURRENT.reset(token)
            if not ctx.recorded:
                code = _ack_code(ack)
                ctx.details["ack"] = code
                outcome = {"AA": ev.SUCCESS, "CA": ev.SUCCESS, "AE": ev.MINOR_FAILURE}.get(
                    code, ev.SERIOUS_FAILURE
                )
                writer.submit(ctx.record(outcome, f"ACK {code}"))

    return wrapped


def _identifier_bytes(identifier: Any) -> bytes:
    try:
        from pydicom.filebase import DicomBytesIO
        from pydicom.filewriter import write_dataset

        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, True  # as the SCU sent it
        write_dataset(buffer, identifier)
        return bytes(buffer.getvalue())
    except Exception:  # noqa: BLE001 - audit what we can
        return b""


def _dicom_context(
    assoc: Any,
    *,
    action: str,
    category: ev.Code,
    code: ev.Code,
    details: dict[str, str],
    query: bytes | None = None,
    with_cert: bool = True,
) -> AccessContext:
    """The access context every DICOM door records: the calling AE and its address."""
    return AccessContext(
        door="dicom",
        action=action,
        category=category,
        code=code,
        agent_id=str(assoc.requestor.ae_title).strip(),
        agent_network=f"{assoc.requestor.address}:{assoc.requestor.port}",
        agent_cert=peer_certificate_subject(assoc) if with_cert else "",
        query=query,
        details=details,
    )


def audited_find(
    handler: Callable[[Any], Iterator[Any]], writer: AuditWriter, called_ae: str
) -> Callable[[Any], Iterator[Any]]:
    def wrapped(event: Any) -> Iterator[Any]:
        assoc = event.assoc
        tally, start = FindTally(), time.perf_counter()
        try:
            yield from tally.count(handler(event))
        finally:
            items, final = tally.items(event), tally.final
            ctx = _dicom_context(
                assoc,
                action="E",
                category=ev.QUERY,
                code=ev.QUERY,
                query=_identifier_bytes(event.identifier),
                details={
                    "called_ae": called_ae,
                    "sop_class": MWL_FIND,
                    "items": str(items),
                    "status": final,
                    "ms": f"{(time.perf_counter() - start) * 1000:.1f}",
                },
            )
            ok = final in ("0000", "FE00")
            writer.submit(ctx.record(ev.SUCCESS if ok else ev.MINOR_FAILURE, f"status {final}"))

    return wrapped


def audited_dimse(
    handler: Callable[[Any], Any], writer: AuditWriter, called_ae: str
) -> Callable[[Any], Any]:
    """N-CREATE / N-SET (MPPS) handlers: a DCM 110111 Procedure Record event; a change is
    recorded in its own transaction, a refusal is queued with the DIMSE status."""

    def wrapped(event: Any) -> Any:
        assoc = event.assoc
        name = getattr(getattr(event, "event", None), "name", "")
        request = getattr(event, "request", None)
        ctx = _dicom_context(
            assoc,
            action="C" if "CREATE" in name else "U",
            category=ev.PROCEDURE_RECORD,
            code=ev.PROCEDURE_RECORD,
            details={
                "called_ae": called_ae,
                "dimse": name.replace("EVT_", ""),
                "sop_class": str(getattr(request, "AffectedSOPClassUID", "") or "")
                or str(getattr(request, "RequestedSOPClassUID", "") or ""),
                "sop_instance": str(getattr(request, "AffectedSOPInstanceUID", "") or "")
                or str(getattr(request, "RequestedSOPInstanceUID", "") or ""),
            },
        )
        token = CURRENT.set(ctx)
        result: Any = None
        try:
            result = handler(event)
            return result
        finally:
            CURRENT.reset(token)
            if not ctx.recorded:
                status = result[0] if isinstance(result, tuple) else result
                code = int(getattr(status, "Status", status) or 0) if status is not None else -1
                ctx.details["status"] = f"{code:04X}" if code >= 0 else "none"
                outcome = ev.SUCCESS if code == 0 else ev.MINOR_FAILURE
                writer.submit(ctx.record(outcome, f"status {ctx.details['status']}"))

    return wrapped


def peer_certificate_subject(assoc: Any) -> str:
    """Subject of the peer's TLS client certificate, when the association runs over TLS."""
    known = getattr(assoc, "tls_subject", None)  # set by dicom.admission after the handshake
    if known:
        return str(known)
    try:
        sock = assoc.dul.socket.socket
        cert = sock.getpeercert() if hasattr(sock, "getpeercert") else None
    except Exception:  # noqa: BLE001
        return ""
    if not cert:
        return ""
    parts = [f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(parts)


def tls_refused(
    writer: AuditWriter, called_ae: str, door: str = "dicom"
) -> Callable[[str, str], None]:
    """A refused DICOM or MLLP TLS handshake (no, foreign or expired client certificate)."""

    def hook(peer: str, reason: str) -> None:
        ctx = AccessContext(
            door=door,
            action="E",
            category=ev.SECURITY_ALERT,
            code=ev.NODE_AUTHENTICATION,
            agent_id="unauthenticated",
            agent_network=peer,
            details={"called_ae": called_ae, "tls": reason}
            if door == "dicom"
            else {"listener": door, "tls": reason},
        )
        writer.submit(ctx.record(ev.MINOR_FAILURE, "TLS handshake refused"))

    return hook


def association_rejected(writer: AuditWriter, called_ae: str) -> Callable[[Any], None]:
    """pynetdicom EVT_REJECTED handler: a security event for each refused association."""

    def handler(event: Any) -> None:
        assoc = event.assoc
        ctx = _dicom_context(
            assoc,
            action="E",
            category=ev.SECURITY_ALERT,
            code=ev.NODE_AUTHENTICATION,
            details={"called_ae": str(assoc.acceptor.ae_title).strip() or called_ae},
            with_cert=False,
        )
        writer.submit(ctx.record(ev.MINOR_FAILURE, "association rejected"))

    return handler
