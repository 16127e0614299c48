"""Turn the bytes of one HL7 v2 message into text, following MSH-18 but never trusting it blindly.

Senders declare a character set in MSH-18 and then often send something else: the corpus holds
`8859/1` messages carrying a UTF-8 en-dash, an `ASCII` message with UTF-8 U+FFFD, a misspelt
`ISOIR87` and UTF-8 files that start with a byte-order mark. Decoding is therefore best effort:
the declared set is tried first, a better-fitting one is used when the bytes prove the
declaration wrong, and every such decision is reported as a warning instead of an exception.

ISO-2022-JP (`ISO IR87`) must be decoded before the message is split: its two-byte codes use
bytes such as 0x5E (`^`) and 0x7C (`|`) that would otherwise be read as delimiters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UTF8_BOM = b"\xef\xbb\xbf"

# MSH-18 values (HL7 table 0211) → Python codec names.
_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR6": "ascii",
    "ISO IR14": "iso2022_jp",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "KS X 1001": "iso2022_kr",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
}
_ESC_JIS = re.compile(rb"\x1b[\$\(][@A-DBHJ]")


@dataclass
class DecodedText:
    """Decoded message text plus what the decoder had to decide on the way."""

    text: str
    codec: str
    declared: str | None
    warnings: list[str] = field(default_factory=list)


def _normalise_label(label: str) -> str:
    return re.sub(r"\s+", " ", label.strip().upper())


def codec_for(label: str) -> str | None:
    """Python codec for one MSH-18 repetition; tolerates `ISOIR87`-style missing spaces."""
    norm = _normalise_label(label)
    if norm in _CHARSETS:
        return _CHARSETS[norm]
    squeezed = norm.replace(" ", "").replace("_", "")
    for key, codec in _CHARSETS.items():
        if key.replace(" ", "") == squeezed:
            return codec
    return None


def declared_charset(raw: bytes) -> str | None:
    """Read MSH-18 from the raw bytes (the MSH segment itself is ASCII in every known encoding).

    Repetitions are joined with `~`; the first non-empty one that names a known set wins in
    `decode_message`. Returns None when MSH-18 is absent or the header is unreadable.
    """
    head = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not head.startswith(b"MSH") or len(head) < 8:
        return None
    sep = head[3:4]
    fields = head.split(sep)
    # fields[0]="MSH", fields[1]=MSH-2 → MSH-n is fields[n-1]
    if len(fields) < 18:
        return None
    value = fields[17].decode("latin-1").strip()
    return value or None


def _choose_codec(declared: str | None, warnings: list[str]) -> str | None:
    if declared is None:
        return None
    reps = [r for r in re.split(r"[~]", declared) if r.strip()]
    for rep in reps:
        codec = codec_for(rep)
        if codec:
            if _normalise_label(rep) not in _CHARSETS:
                warnings.append(f"MSH-18 {rep!r} is not a table 0211 value; read as {codec}")
            return codec
    warnings.append(f"MSH-18 {declared!r} names no known character set; guessing")
    return None


def _is_utf8_with_non_ascii(raw: bytes) -> bool:
    if raw.isascii():
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_message(raw: bytes) -> DecodedText:
    """Decode one message; never raises on bad bytes (undecodable bytes become U+FFFD)."""
    warnings: list[str] = []
    declared = declared_charset(raw.removeprefix(UTF8_BOM))
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
        codec = "utf-8"
        declared_codec = _choose_codec(declared, warnings)
        if declared_codec not in (None, "utf-8", "ascii"):
            warnings.append(f"UTF-8 byte-order mark overrides MSH-18 {declared!r}")
        return DecodedText(_decode(raw, codec, warnings), codec, declared, warnings)
    chosen = _choose_codec(declared, warnings)
    codec = _guess(raw, warnings) if chosen is None else _verify(raw, chosen, declared, warnings)
    return DecodedText(_decode(raw, codec, warnings), codec, declared, warnings)


def _verify(raw: bytes, codec: str, declared: str | None, warnings: list[str]) -> str:
    """Keep the declared codec unless the bytes prove it wrong."""
    if codec.startswith(("iso2022", "utf-")):
        return codec
    if _is_utf8_with_non_ascii(raw):
        # Valid multi-byte UTF-8 is almost never meaningful Latin-1/ASCII text.
        warnings.append(f"MSH-18 declares {declared!r} but the bytes are UTF-8; decoded as UTF-8")
        return "utf-8"
    if codec == "ascii" and not raw.isascii():
        warnings.append("MSH-18 declares ASCII but bytes above 0x7F occur; decoded as Latin-1")
        return "latin-1"
    return codec


def _guess(raw: bytes, warnings: list[str]) -> str:
    if raw.isascii():
        if _ESC_JIS.search(raw):
            warnings.append("ISO-2022 escape sequences without MSH-18; decoded as ISO-2022-JP")
            return "iso2022_jp"
        return "ascii"
    if _is_utf8_with_non_ascii(raw):
        return "utf-8"
    warnings.append("non-ASCII bytes without a usable MSH-18; decoded as Latin-1")
    return "latin-1"


def _decode(raw: bytes, codec: str, warnings: list[str]) -> str:
    try:
        return raw.decode(codec)
    except (UnicodeDecodeError, LookupError) as exc:
        warnings.append(f"bytes not valid {codec} ({exc}); undecodable bytes replaced by U+FFFD")
        try:
            return raw.decode(codec, errors="replace")
        except LookupError:
            return raw.decode("latin-1")


def encode_text(text: str, codec: str) -> bytes:
    """Encode an outbound message (e.g. an ACK) in the codec of the message it answers."""
    try:
        return text.encode(codec)
    except (UnicodeEncodeError, LookupError):
        try:
            return text.encode(codec, errors="replace")
        except LookupError:
            return text.encode("utf-8")
