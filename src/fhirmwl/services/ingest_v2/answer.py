"""The v2 door's half of a truthful answer: findings of the order service become ERR segments.

An ``AA`` promises that the order is stored and, when it is schedulable, on the worklist.
Everything the broker will not do as sent (a step not on the worklist, a modality or start time
it replaced) and every repair of the message itself (MSH-18 naming the wrong character set, a
control id reused with new content) travels back in the same ACK as an ERR segment with
severity ``W``: ERR-2 the field (segment^sequence^field), ERR-3 the table 0357 code, ERR-8 the
reason with the value. The order service speaks FHIR elements (``Finding.about``); this module
maps them to the v2 fields the order came from. A refusal by the profiles (a value the worklist
cannot carry at all) is located the same way (``refusal``): ERR-2 the field, ERR-3 102/101, and
ERR-8 naming the value and the rule, instead of an unlocated 207 with the validator's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhirmwl.errors import FhirMwlError
from fhirmwl.hl7v2.ack import AckError, build_ack, encode_ack
from fhirmwl.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    ErrorLocation,
    V2Error,
)
from fhirmwl.hl7v2.message import V2Message
from fhirmwl.mapping.v2_to_fhir import OrderMessage
from fhirmwl.services.orders.matching import group_entries
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


# Element of a refused resource → Finding.about (or a PID field) to locate the v2 field.
_ELEMENTS = (
    ("Task.identifier", "sps-id"),
    ("Task.input", "modality"),
    ("Task.requestedPeriod", "start"),
    ("Device.", "station"),
    ("ImagingStudy.identifier", "study-instance-uid"),
    ("ServiceRequest.code", "procedure"),
    ("Patient.name", "PID-5"),
    ("Patient.identifier", "PID-3"),
    ("Patient.birthDate", "PID-7"),
)
_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]")
_REROOTED = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource\.(.+)$")
_PATH = re.compile(r"([A-Za-z]+)(?:\[(\d+)\])?")


def _value_at(resource: dict[str, Any], expression: str) -> Any:
    node: Any = resource
    for name, index in _PATH.findall(expression.partition(".")[2]):
        node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, list):
            node = node[int(index or 0)] if len(node) > int(index or 0) else None
    return node


def refusal(exc: FhirMwlError, message: V2Message | None, om: object) -> V2Error | None:
    """A profile refusal of the mapped order as a v2 error naming the field and the value
    (ERR-2, ERR-3 102 for a value the worklist cannot carry, 101 for a missing one); None when
    the refusal cannot be traced to a field."""
    issue = next((i for i in exc.issues or [] if i.get("severity") in ("error", "fatal")), None)
    if issue is None or message is None or not isinstance(om, OrderMessage):
        return None
    if not issue.get("expression"):
        return None
    expression = str(issue["expression"][0])
    entries = om.bundle.get("entry") or []
    rerooted = _REROOTED.match(expression)  # Bundle.entry[i].resource.<path>
    found = rerooted or _ENTRY.match(str(issue.get("diagnostics", "")))
    if found is None:
        return None
    entry = entries[int(found.group(1))] if int(found.group(1)) < len(entries) else {}
    if rerooted:
        rtype = str((entry.get("resource") or {}).get("resourceType", ""))
        expression = f"{rtype}.{rerooted.group(2)}"
    about = next((a for prefix, a in _ELEMENTS if expression.startswith(prefix)), None)
    if about is None:
        return None
    value = _value_at(entry.get("resource") or {}, expression)
    reason = str(issue.get("diagnostics", "")).rpartition(" failed: ")[2].split(" (expression:")[0]
    order = next(
        (g.isr_full_url for g in om.groups if entry in group_entries(om.bundle, g.isr_full_url)), ""
    )
    if about.startswith("PID-"):
        where = ErrorLocation("PID", 1, int(about[4:]))
    else:
        where = _location(Finding(about, "", expression, order), message, om)
    missing = issue.get("code") == "required" or value in (None, "")
    code = REQUIRED_FIELD_MISSING if missing else DATA_TYPE_ERROR
    shown = "missing" if missing else f"{value!r} cannot be carried: {reason}"
    return V2Error(code, f"{where} ({expression}) {shown}", where)
