"""Parse one HL7 v2 message into segments with typed, unescaped field access.

Library choice, measured on this machine with the corpus OMI^O23 (11 segments):
python-hl7 (`hl7` 0.4.5) `parse()` takes about 1.3 ms, because it builds a full five-level
object tree for every message; hl7apy is slower still and validates against per-version
structure definitions, which rejects much of the real corpus (an ORM file labelled OMI, 3- and
5-character MSH-2, v2.2 messages). A field-level split takes about 9 µs, and the broker reads
only some 60 fields of a message. So this module splits segments and fields itself and splits
repetitions/components/sub-components lazily on access; python-hl7 remains the reference the
unit tests compare the split against for every corpus message. python-hl7's own `unescape`
logs through the deprecated
`Logger.warn` and drops unknown sequences, so escape sequences are decoded here as well.

Before splitting, the text is normalised: a UTF-8 BOM is removed and decoded per MSH-18
(`fhirmwl.hl7v2.charset`), CR LF and bare LF segment terminators become CR, and an MSH-2 with a
repeated character (seen as `^~\\\\&` in the corpus) or a v2.7 truncation character is reduced
to the four classic delimiters. Every such repair is recorded in ``V2Message.warnings``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhirmwl.hl7v2.charset import decode_message
from fhirmwl.hl7v2.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    ErrorLocation,
    V2Reject,
)

_SEGMENT_START = re.compile(r"\n(?=[A-Z][A-Z0-9]{2}[^A-Za-z0-9\s])")


@dataclass(frozen=True)
class Delimiters:
    """MSH-1 and MSH-2: field, component, repetition, escape and sub-component characters."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


def unescape(value: str, d: Delimiters, codec: str = "latin-1") -> str:
    """Decode HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\, .br); drop formatting.

    Unterminated or unknown sequences are kept literally: losing data is worse than showing an
    escape character.
    """
    esc = d.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if ch != esc or end == -1:
            out.append(ch)
            i += 1
            continue
        out.append(_escape_sequence(value[i + 1 : end], d, codec, value[i : end + 1]))
        i = end + 1
    return "".join(out)


def _escape_sequence(seq: str, d: Delimiters, codec: str, literal: str) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition}
    if seq in simple:
        return simple[seq]
    if seq == "E":
        return d.escape
    if seq in ("H", "N") or seq.startswith(("C", "M", "Z")):
        return ""
    if seq in (".br", ".sp"):
        return "\n"
    if seq.startswith("."):
        return ""
    if seq.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", seq):
        data = bytes.fromhex(seq[1:])
        try:
            return data.decode(codec if not codec.startswith("iso2022") else "latin-1")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return literal


@dataclass
class Segment:
    """One segment; ``fields[n]`` is field n (MSH-1 is ``fields[1]``, as HL7 numbers them)."""

    id: str
    fields: list[str]
    delimiters: Delimiters
    codec: str = "latin-1"
    _cache: dict[tuple[int, int], list[str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        raw = self.raw(n)
        if self.id == "MSH" and n <= 2:
            return [raw] if raw else []
        return [r for r in raw.split(self.delimiters.repetition)] if raw else []

    def components(self, n: int, rep: int = 1) -> list[str]:
        """Unescaped components of repetition ``rep`` of field ``n`` (sub-components joined)."""
        reps = self.repetitions(n)
        if rep > len(reps):
            return []
        return [self._unescape(c) for c in reps[rep - 1].split(self.delimiters.component)]

    def _split(self, n: int, rep: int) -> list[str]:
        """Raw components of one repetition, split once per segment (the mapping reads each
        field several times)."""
        key = (n, rep)
        cached = self._cache.get(key)
        if cached is None:
            reps = self.repetitions(n)
            cached = reps[rep - 1].split(self.delimiters.component) if rep <= len(reps) else []
            self._cache[key] = cached
        return cached

    def comp(self, n: int, c: int = 1, rep: int = 1, sub: int | None = None) -> str:
        """Component ``c`` of field ``n`` (``sub`` selects a sub-component), unescaped, stripped.
        (The mappings call this some 160 times per message: the split is cached per segment
        and ``unescape`` runs only on a value that holds the escape character.)"""
        comps = self._cache.get((n, rep))
        if comps is None:
            comps = self._split(n, rep)
        if c > len(comps):
            return ""
        value = comps[c - 1]
        if sub is not None:
            subs = value.split(self.delimiters.subcomponent)
            value = subs[sub - 1] if sub <= len(subs) else ""
        esc = self.delimiters.escape
        if esc and esc in value:
            value = self._unescape(value)
        return value.strip()

    def subcomponents(self, n: int, c: int, rep: int = 1) -> list[str]:
        comps = self._split(n, rep)
        if c > len(comps):
            return []
        return [self._unescape(s).strip() for s in comps[c - 1].split(self.delimiters.subcomponent)]

    def _unescape(self, value: str) -> str:
        return unescape(value, self.delimiters, self.codec)


@dataclass
class V2Message:
    """A parsed message: segments in order, the delimiters, the codec used and any warnings."""

    segments: list[Segment]
    delimiters: Delimiters
    codec: str
    declared_charset: str | None
    warnings: list[str] = field(default_factory=list)
    # Repairs that make the content unreliable (ambiguous delimiters): the intake rejects them.
    defects: list[str] = field(default_factory=list)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    @property
    def message_code(self) -> str:
        return self.msh.comp(9, 1).upper()

    @property
    def trigger_event(self) -> str:
        return self.msh.comp(9, 2).upper()

    @property
    def structure(self) -> str:
        return self.msh.comp(9, 3).upper()

    @property
    def control_id(self) -> str:
        return self.msh.comp(10)

    @property
    def version(self) -> str:
        return self.msh.comp(12)

    def first(self, segment_id: str) -> Segment | None:
        for seg in self.segments:
            if seg.id == segment_id:
                return seg
        return None

    def all(self, segment_id: str) -> list[Segment]:
        return [s for s in self.segments if s.id == segment_id]

    def sequence_of(self, segment: Segment) -> int:
        """1-based position of ``segment`` among segments with the same id (ERR-2.2)."""
        same = [s for s in self.segments if s.id == segment.id]
        return next(i for i, s in enumerate(same, 1) if s is segment)


def _normalise_terminators(text: str, warnings: list[str]) -> str:
    if "\r\n" in text:
        text = text.replace("\r\n", "\r")
    if "\n" in text:
        if "\r" not in text:
            text = text.replace("\n", "\r")
        else:
            warnings.append("mixed CR and LF terminators; LF kept only inside field values")
            text = _SEGMENT_START.sub("\r", text)
    return text


def _normalise_msh2(text: str, warnings: list[str], defects: list[str]) -> tuple[str, Delimiters]:
    if not text.startswith("MSH") or len(text) < 5:
        raise V2Reject(DATA_TYPE_ERROR, "message does not start with MSH", ErrorLocation("MSH"))
    fsep = text[3]
    end = text.find(fsep, 4)
    msh2 = text[4:end] if end != -1 else ""
    if fsep.isalnum() or fsep.isspace() or not msh2 or fsep in msh2:
        raise V2Reject(
            DATA_TYPE_ERROR, f"invalid MSH-1/MSH-2 {text[3:9]!r}", ErrorLocation("MSH", 1, 2)
        )
    chars = list(dict.fromkeys(msh2))  # drops repeats, keeps order
    if len(chars) != len(msh2):
        defects.append(f"MSH-2 {msh2!r} repeats a delimiter; read as {''.join(chars)!r}")
    if len(chars) > 4:
        warnings.append(f"MSH-2 {msh2!r}: characters after the fourth ignored (truncation)")
        chars = chars[:4]
    if len(chars) < 4:
        warnings.append(f"MSH-2 {msh2!r} has fewer than 4 characters; defaults used")
    default = Delimiters()
    parts = chars + list(default.msh2[len(chars) :])
    d = Delimiters(fsep, parts[0], parts[1], parts[2], parts[3])
    if len(set(d.msh2 + fsep)) != 5:
        d = Delimiters(fsep, parts[0], parts[1], parts[2], "")
    new_msh2 = "".join(chars)
    if new_msh2 != msh2:
        text = text[:4] + new_msh2 + text[end:]
    return text, d


def parse_text(text: str, codec: str = "utf-8", declared: str | None = None) -> V2Message:
    """Parse already-decoded text; raises `V2Reject` (AR) when there is no usable MSH."""
    warnings: list[str] = []
    text = text.lstrip("\ufeff \t\r\n\x0b").rstrip("\x1c\r\n\x00 \t")
    text = _normalise_terminators(text, warnings)
    defects: list[str] = []
    text, delims = _normalise_msh2(text, warnings, defects)
    segments: list[Segment] = []
    for line in text.split("\r"):
        seg_id = line[:3].strip()
        if not seg_id:
            continue
        if seg_id == "MSH":
            fields = ["MSH", delims.field, *line[4:].split(delims.field)]
        else:
            fields = line.split(delims.field)
        segments.append(Segment(fields[0].strip(), fields, delims, codec))
    msg = V2Message(segments, delims, codec, declared, warnings, defects)
    if not msg.message_code:
        raise V2Reject(
            REQUIRED_FIELD_MISSING, "MSH-9 message type missing", ErrorLocation("MSH", 1, 9)
        )
    return msg


def parse_message(raw: bytes | str) -> V2Message:
    """Decode (per MSH-18, best effort) and parse one message; raises `V2Reject` only for
    input that has no usable MSH segment."""
    if isinstance(raw, str):
        return parse_text(raw)
    decoded = decode_message(raw)
    msg = parse_text(decoded.text, decoded.codec, decoded.declared)
    msg.warnings[:0] = decoded.warnings
    return msg
