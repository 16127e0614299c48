"""Specific Character Set policy for C-FIND responses.

Worklist items are Unicode inside the broker. Responses go out in UTF-8 (``ISO_IR 192``) unless
the calling AE is configured for a legacy set (``ISO_IR 100``, ``\\ISO 2022 IR 87`` …). Text
that the chosen set cannot represent is replaced by ``?`` before pydicom encodes the identifier,
and the attributes concerned are reported so the caller can log them (keywords only: no patient
data in logs).
"""

from __future__ import annotations

from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from fhirmwl.worklist.values import TEXT_VRS

DEFAULT_CHARSET = "ISO_IR 192"
UNICODE_SETS = frozenset({"ISO_IR 192", "GB18030", "GBK"})
ASCII_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})


def parse_charset(value: str) -> list[str]:
    """``"\\ISO 2022 IR 87"`` → ``["", "ISO 2022 IR 87"]`` (first value empty = ASCII in G0)."""
    return [v.strip() for v in value.split("\\")]


def prepare_response(ds: Dataset, terms: list[str]) -> list[str]:
    """Make ``ds`` encodable in ``terms`` and set (0008,0005); returns replaced keywords."""
    replaced: list[str] = []
    if not any(t in UNICODE_SETS for t in terms):
        encodings = ["ascii" if t in ASCII_TERMS else convert_encodings([t])[0] for t in terms]
        _replace(ds, encodings, replaced)
    if terms in ([""], ["ISO_IR 6"]):
        if "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
    else:
        ds.SpecificCharacterSet = terms if len(terms) > 1 else terms[0]
    return replaced


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


def _replace(ds: Dataset, encodings: list[str], replaced: list[str]) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or []:
                _replace(item, encodings, replaced)
            continue
        if elem.VR not in TEXT_VRS or elem.value in (None, ""):
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        cleaned = [_clean(str(v), encodings) for v in values]
        if cleaned != [str(v) for v in values]:
            replaced.append(elem.keyword or str(elem.tag))
            new = [PersonName(c) for c in cleaned] if elem.VR == "PN" else cleaned
            elem.value = new if elem.VM > 1 else new[0]
