"""Specific Character Set policy for C-FIND responses.

Worklist items are Unicode inside the broker. Responses go out in UTF-8 (``ISO_IR 192``) unless
the calling AE is configured for a legacy set (``ISO_IR 100``, ``\\ISO 2022 IR 87`` …). Text
that the chosen set cannot represent is replaced by ``?`` before the identifier is encoded, and
the attributes concerned are reported so the caller can log them (keywords only: no patient
data in logs). The policy works on the projected answer in DICOM JSON form, like the rest of the
answer path.
"""

from __future__ import annotations

from typing import Any

from pydicom.charset import convert_encodings
from pydicom.datadict import keyword_for_tag

from fhirmwl.worklist.values import TEXT_VRS

DEFAULT_CHARSET = "ISO_IR 192"
UNICODE_SETS = frozenset({"ISO_IR 192", "GB18030", "GBK"})
ASCII_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})
SPECIFIC_CHARACTER_SET = "00080005"
JsonItem = dict[str, Any]


def parse_charset(value: str) -> list[str]:
    """``"\\ISO 2022 IR 87"`` → ``["", "ISO 2022 IR 87"]`` (first value empty = ASCII in G0)."""
    return [v.strip() for v in value.split("\\")]


def python_codec(terms: list[str]) -> str | None:
    """The one Python codec that encodes text in ``terms``; ``None`` for ISO 2022 code
    extensions (several terms), which need pydicom's escape-sequence encoder."""
    if len(terms) != 1:
        return None
    if terms[0] in ASCII_TERMS:
        return "ascii"
    return str(convert_encodings([terms[0]])[0])


def prepare_json(item: JsonItem, terms: list[str]) -> tuple[JsonItem, list[str]]:
    """``item`` made encodable in ``terms``, with (0008,0005) set; and the replaced keywords.
    Entries that change are copied, so the stored item is never modified."""
    replaced: list[str] = []
    out = item
    if not any(t in UNICODE_SETS for t in terms):
        encodings = ["ascii" if t in ASCII_TERMS else convert_encodings([t])[0] for t in terms]
        out = _replace(item, encodings, replaced)
    out = {k: v for k, v in out.items() if k != SPECIFIC_CHARACTER_SET}
    if terms not in ([""], ["ISO_IR 6"]):
        out[SPECIFIC_CHARACTER_SET] = {"vr": "CS", "Value": list(terms)}
        out = dict(sorted(out.items()))
    return out, replaced


def _encodable(text: str, encodings: list[str]) -> bool:
    """True when every character can be written in one of the set's codecs."""
    for char in text:
        for codec in encodings:
            try:
                char.encode(codec)
                break
            except (UnicodeError, LookupError):
                continue
        else:
            return False
    return True


def _clean(text: str, encodings: list[str]) -> str:
    if text.isascii() or _encodable(text, encodings):
        return text
    return "".join(c if c.isascii() or _encodable(c, encodings) else "?" for c in text)


def _clean_value(value: Any, encodings: list[str]) -> Any:
    if isinstance(value, dict):  # PN groups
        return {group: _clean(str(text), encodings) for group, text in value.items()}
    return _clean(value, encodings) if isinstance(value, str) else value


def _replace(item: JsonItem, encodings: list[str], replaced: list[str]) -> JsonItem:
    out: JsonItem = {}
    for key, entry in item.items():
        vr, values = entry.get("vr"), entry.get("Value")
        if vr == "SQ" and values:
            out[key] = {"vr": "SQ", "Value": [_replace(i, encodings, replaced) for i in values]}
        elif vr in TEXT_VRS and values:
            cleaned = [_clean_value(v, encodings) for v in values]
            if cleaned != values:
                replaced.append(keyword_for_tag(int(key, 16)) or key)
                entry = {**entry, "Value": cleaned}
            out[key] = entry
        else:
            out[key] = entry
    return out
