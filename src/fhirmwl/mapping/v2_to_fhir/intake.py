"""Parse, map and acknowledge one inbound message, without IO: the v2 intake's pure core.

`evaluate` is what the listener does before touching the store: decode and parse the bytes,
refuse unreliable input, map the message, and say which ACK it deserves if nothing else goes
wrong. The service layer commits `result.mapped` and then sends `result.ack` (or builds another
ACK with `ack_for_error` when the commit fails: AE 207, nothing half-applied). The CLI's
`to-fhir` and the corpus tests use it as is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fhirmwl.hl7v2.ack import AckError, build_ack, encode_ack
from fhirmwl.hl7v2.errors import DATA_TYPE_ERROR, ErrorLocation, V2Error, V2Reject
from fhirmwl.hl7v2.message import V2Message, parse_message
from fhirmwl.mapping.v2_to_fhir import AdtMessage, MappingContext, OrderMessage, map_message


@dataclass
class IntakeResult:
    message: V2Message | None
    mapped: OrderMessage | AdtMessage | None
    ack_code: str  # MSA-1 the message deserves if the commit succeeds
    ack: bytes  # encoded ACK (no MLLP framing)
    error: V2Error | None = None
    warnings: list[str] = field(default_factory=list)


def ack_for_error(
    message: V2Message | None,
    error: V2Error,
    control_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bytes:
    text = build_ack(
        message,
        error.ack_code,
        errors=[AckError.from_exception(error)],
        text=error.message,
        control_id=control_id,
        now=now,
    )
    return encode_ack(message, text)


def _refuse_nul(msg: V2Message) -> None:
    """A NUL character (0x00) in a field: a permanent error (no store keeps it; PostgreSQL text
    cannot hold it), so the sender must correct the message rather than resend it."""
    seen: dict[str, int] = {}
    for seg in msg.segments:
        seen[seg.id] = seen.get(seg.id, 0) + 1
        for n, value in enumerate(seg.fields):
            if "\x00" in value:
                where = ErrorLocation(seg.id, seen[seg.id], n or None)
                raise V2Error(
                    DATA_TYPE_ERROR,
                    f"{where} contains a NUL character (0x00), which no field may carry; "
                    "correct the message (resending it unchanged cannot succeed)",
                    where,
                )


def evaluate(raw: bytes, ctx: MappingContext, control_id: str | None = None) -> IntakeResult:
    """Never raises for bad input: every failure becomes an AR/AE result with an ERR."""
    ack_id = control_id or f"ACK{ctx.new_uuid().hex[:16].upper()}"
    try:
        msg = parse_message(raw)
    except V2Error as exc:
        return IntakeResult(
            None, None, exc.ack_code, ack_for_error(None, exc, ack_id, ctx.clock), exc
        )
    try:
        if msg.defects:
            raise V2Reject(DATA_TYPE_ERROR, "; ".join(msg.defects), ErrorLocation("MSH", 1, 2))
        _refuse_nul(msg)
        mapped = map_message(msg, ctx)
    except V2Error as exc:
        ack = ack_for_error(msg, exc, ack_id, ctx.clock)
        return IntakeResult(msg, None, exc.ack_code, ack, exc, list(msg.warnings))
    text = build_ack(msg, "AA", control_id=ack_id, now=ctx.clock)
    return IntakeResult(msg, mapped, "AA", encode_ack(msg, text), None, list(msg.warnings))
