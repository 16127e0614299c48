"""Build original-mode acknowledgements (ACK with MSA and, on failure, ERR).

The ACK answers in the delimiters, version and character set of the message it acknowledges, so
that the sender's parser reads it with the settings it already uses. ERR carries both the v2.3
style ERR-1 (segment^sequence^field^code&text) for old receivers and the v2.5 ERR-2 (location),
ERR-3 (table 0357 code), ERR-4 (severity) and ERR-8 (diagnostic text). When the inbound message
could not be parsed at all, the ACK falls back to default delimiters and an empty MSA-2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fhirmwl.hl7v2.charset import encode_text
from fhirmwl.hl7v2.errors import ERROR_TEXT, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Delimiters, V2Message


@dataclass(frozen=True)
class AckError:
    """One ERR segment: table 0357 code, location, severity (E/W/I) and a diagnostic text."""

    code: str
    text: str
    location: ErrorLocation | None = None
    severity: str = "E"

    @classmethod
    def from_exception(cls, exc: V2Error) -> AckError:
        return cls(exc.hl7_code, exc.message, exc.location)


def _escape(value: str, d: Delimiters) -> str:
    """Escape delimiter characters in free text placed into the ACK."""
    if not d.escape:
        return value
    e = d.escape
    out = value.replace(e, f"{e}E{e}")
    for ch, code in (
        (d.field, "F"),
        (d.component, "S"),
        (d.subcomponent, "T"),
        (d.repetition, "R"),
    ):
        if ch:
            out = out.replace(ch, f"{e}{code}{e}")
    return out.replace("\r", " ").replace("\n", " ")


def clip(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters at a word boundary, marked with "..."."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "..."


def _err_segment(err: AckError, d: Delimiters) -> str:
    c, s = d.component, d.subcomponent or d.component
    loc = err.location
    text = _escape(ERROR_TEXT.get(err.code, ""), d)
    code_cwe = c.join([err.code, text, "HL70357"])
    erl = eld = ""
    if loc is not None:
        parts = [loc.segment, str(loc.sequence), str(loc.field or "")]
        if loc.repetition or loc.component:
            parts += [str(loc.repetition or 1), str(loc.component or "")]
        erl = c.join(parts).rstrip(c)
        eld = c.join([loc.segment, str(loc.sequence), str(loc.field or ""), ""])
        eld += s.join([err.code, text, "HL70357"])
    fields = ["ERR", eld, erl, code_cwe, err.severity, "", "", "", _escape(clip(err.text, 250), d)]
    return d.field.join(fields)


def build_ack(
    message: V2Message | None,
    ack_code: str,
    *,
    errors: list[AckError] | None = None,
    text: str = "",
    control_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sending_application: str = "",
    sending_facility: str = "",
) -> str:
    """Return the ACK text (segments joined with CR, no MLLP framing)."""
    d = message.delimiters if message else Delimiters()
    f = d.field
    msh_in = message.msh if message else None

    def raw(n: int) -> str:
        return msh_in.raw(n) if msh_in else ""

    version = raw(12) or "2.5.1"
    trigger = msh_in.comp(9, 2) if msh_in else ""
    msg_type = d.component.join(["ACK", trigger, "ACK"]) if trigger else "ACK"
    stamp = now().strftime("%Y%m%d%H%M%S")
    msh = [
        "MSH",
        d.msh2,
        _escape(sending_application, d) or raw(5) or "FHIRMWL",
        _escape(sending_facility, d) or raw(6),
        raw(3),
        raw(4),
        stamp,
        "",
        msg_type,
        _escape(control_id, d),
        raw(11) or "P",
        version,
    ]
    if message and message.declared_charset:
        msh += ["", "", "", "", "", raw(18)]
    msa = ["MSA", ack_code, raw(10), _escape(clip(text, 80), d)]
    lines = [f.join(msh), f.join(msa if msa[3] else msa[:3])]
    lines += [_err_segment(e, d) for e in errors or []]
    return "\r".join(lines) + "\r"


def encode_ack(message: V2Message | None, ack: str) -> bytes:
    """Encode the ACK in the character set of the acknowledged message."""
    return encode_text(ack, message.codec if message else "ascii")
