"""The v2 door's half of a truthful answer: findings of the order service become ERR segments.

An ``AA`` promises that the order is stored and, when it is schedulable, on the worklist.
Everything the broker will not do as sent (a step not on the worklist, a modality or start time
it replaced) and every repair of the message itself (MSH-18 naming the wrong character set, a
control id reused with new content) travels back in the same ACK as an ERR segment with
severity ``W``: ERR-2 the field (segment^sequence^field), ERR-3 the table 0357 code, ERR-8 the
reason with the value. The order service speaks FHIR elements (``Finding.about``); this module
maps them to the v2 fields the order came from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fhirmwl.hl7v2.ack import AckError, build_ack, encode_ack
from fhirmwl.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    ErrorLocation,
)
from fhirmwl.hl7v2.message import V2Message
from fhirmwl.mapping.v2_to_fhir import OrderMessage
from fhirmwl.services.orders.steps import Finding

# Finding.about → (ORM field, OMI field with IPC); the sequence is the ORC group's.
_FIELDS: dict[str, tuple[tuple[str, int], tuple[str, int]]] = {
    "modality": (("OBR", 24), ("IPC", 5)),
    "station": (("IPC", 9), ("IPC", 9)),
    "procedure": (("OBR", 4), ("OBR", 4)),
    "accession": (("OBR", 18), ("IPC", 1)),
    "requested-procedure-id": (("OBR", 19), ("IPC", 2)),
    "sps-id": (("OBR", 20), ("IPC", 4)),
    "study-instance-uid": (("ZDS", 1), ("IPC", 3)),
}
_SEVERITY = {"information": "I", "warning": "W", "error": "E"}
# Words of a worklist reason ("missing Patient's Name") → the Finding.about they concern.
_REASONS = (
    ("Patient's Name", "PID", 5),
    ("Patient ID", "PID", 3),
    ("Scheduled Station AE Title", "station", 0),
    ("Modality", "modality", 0),
    ("Scheduled Procedure Step Start", "start", 0),
    ("Accession Number", "accession", 0),
    ("Requested Procedure ID", "requested-procedure-id", 0),
    ("Scheduled Procedure Step ID", "sps-id", 0),
    ("Study Instance UID", "study-instance-uid", 0),
)


def _location(finding: Finding, message: V2Message, om: OrderMessage) -> ErrorLocation:
    seq = next((g.index for g in om.groups if g.isr_full_url == finding.order), 1)
    about = finding.about
    if about == "patient":
        return ErrorLocation("PID", 1, 3)
    if about == "worklist":
        for words, what, fld in _REASONS:
            if words in finding.text:
                if fld:
                    return ErrorLocation(what, 1, fld)
                about = what
                break
    if about == "start":
        tq1 = message.first("TQ1") is not None
        return ErrorLocation("TQ1", seq, 7) if tq1 else ErrorLocation("ORC", seq, 7)
    if about in _FIELDS:
        orm, omi = _FIELDS[about]
        segment, fld = omi if message.first("IPC") is not None else orm
        return ErrorLocation(segment, seq, fld)
    return ErrorLocation("ORC", seq)


def finding_errors(
    findings: list[Finding], message: V2Message, om: OrderMessage | None
) -> list[AckError]:
    out = []
    for f in findings:
        where = _location(f, message, om) if om is not None else ErrorLocation("MSH", 1)
        severity = _SEVERITY.get(f.severity, "W")
        out.append(AckError(f.hl7_code or APPLICATION_INTERNAL_ERROR, f.text, where, severity))
    return out


def message_errors(message: V2Message) -> list[AckError]:
    """Repairs made while reading the message (character set, delimiters) as W errors."""
    out = []
    for text in message.warnings:
        field = 18 if "MSH-18" in text or "UTF-8" in text or "Latin-1" in text else 2
        code = DATA_TYPE_ERROR if field == 18 else REQUIRED_FIELD_MISSING
        if "terminators" in text:
            field, code = 0, DATA_TYPE_ERROR
        out.append(AckError(code, text, ErrorLocation("MSH", 1, field or None), "W"))
    return out


def accept(
    message: V2Message,
    errors: list[AckError],
    control_id: str,
    now: Callable[[], datetime],
) -> bytes:
    """``AA`` with the given W errors (MSA-3 says how many)."""
    n = sum(e.severity == "W" for e in errors)
    text = f"accepted with {n} warning(s)" if n else ""
    ack = build_ack(message, "AA", errors=errors, text=text, control_id=control_id, now=now)
    return encode_ack(message, ack)
