"""Value-level helpers shared by the matcher, the SQL translation and the row builder.

DICOM compares dates and times "by meaning" (TM ``2230`` equals ``223000``) and PN values
case-insensitively in this broker. Putting the normalisation in one module guarantees that the
SQL pre-filter and the Python matcher normalise identically, so SQL always selects a superset of
what Python accepts.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
WILDCARD_VRS = TEXT_VRS
DATE_TIME_VRS = frozenset({"DA", "TM", "DT"})
# Matching-key value rules shared by C-FIND and the HTTP forms ($mwl-query, DICOMweb), so the
# same bad value gets the same verdict at every door (A900 / 400).
_DA = re.compile(r"^(\d{8}|\d{4}\.\d{2}\.\d{2})$")
_TM = re.compile(r"^\d{2}(:?\d{2}(:?\d{2}(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^\d{4}(\d{2}){0,5}(\.\d{1,6})?(\+\d{4})?$")
_UI = re.compile(r"^[0-9]+(\.[0-9]+)*$")
TEMPORAL_FORMS = {"DA": _DA, "TM": _TM, "DT": _DT}
# Maximum value lengths of PS3.5 Table 6.2-1 (PN: per component group); LT/ST/UT are return
# keys in practice but are bounded too, so no peer value reaches SQL unbounded.
MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DS": 16, "IS": 12, "LO": 64, "PN": 64, "SH": 16,
    "UI": 64, "ST": 1024, "LT": 10240, "UC": 1024, "UR": 1024, "UT": 10240,
}  # fmt: skip
TIME_MAX = "235959.999999"
TIME_MIN = "000000"
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def element_strings(elem: DataElement | None) -> list[str]:
    """The element's values as stripped strings; ``[]`` when absent or zero length."""
    if elem is None or elem.VR == "SQ":
        return []
    value: Any = elem.value
    if value is None or value == "" or value == b"":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out: list[str] = []
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        text = text.rstrip(" \x00") if elem.VR in ("LT", "ST", "UT") else text.strip(" \x00")
        out.append(text)
    return [v for v in out if v != ""] if len(out) == 1 else out


def json_strings(entry: dict[str, Any] | None) -> list[str]:
    """:func:`element_strings` for one DICOM JSON attribute (``{"vr": …, "Value": […]}``):
    PN objects become ``Alphabetic=Ideographic=Phonetic``, numbers their text."""
    if entry is None:
        return []
    vr = entry.get("vr")
    values = entry.get("Value")
    if not values or vr == "SQ":
        if "InlineBinary" in entry:
            return [base64.b64decode(entry["InlineBinary"]).decode("latin-1").strip(" \x00")]
        return []
    out: list[str] = []
    for item in values:
        text = pn_text(item) if isinstance(item, dict) else str(item)
        text = text.rstrip(" \x00") if vr in ("LT", "ST", "UT") else text.strip(" \x00")
        out.append(text)
    return [v for v in out if v != ""] if len(out) == 1 else out


def pn_text(value: dict[str, str] | str) -> str:
    """A DICOM JSON PN value (``{"Alphabetic": …}``) as the DICOM string form."""
    if isinstance(value, str):
        return value
    groups = [value.get(g, "") for g in PN_GROUPS]
    return "=".join(groups).rstrip("=")


def norm_date(value: str) -> str:
    """DA in ``YYYYMMDD`` form (accepts the ACR-NEMA ``YYYY.MM.DD`` form)."""
    return value.strip().replace(".", "")


def norm_time(value: str) -> str:
    """TM as ``HHMMSS[.F…]`` so that string order equals time order (``2230`` → ``223000``)."""
    text = value.strip().replace(":", "")
    whole, _, frac = text.partition(".")
    whole = (whole + "000000")[:6]
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def norm_datetime(value: str) -> str:
    """DT without offset, padded to full precision (offsets are ignored, see conformance doc)."""
    text = re.split(r"[+-]", value.strip(), maxsplit=1)[0]
    whole, _, frac = text.partition(".")
    whole = (whole + "0101000000")[:14] if len(whole) < 8 else (whole + "000000")[:14]
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def norm_temporal(vr: str, value: str) -> str:
    if vr == "DA":
        return norm_date(value)
    if vr == "TM":
        return norm_time(value)
    return norm_datetime(value)


def norm_pn(value: str) -> str:
    """Upper-case PN with empty trailing components removed in every component group."""
    groups = [g.rstrip("^ ") for g in value.upper().split("=")]
    while groups and groups[-1] == "":
        groups.pop()
    return "=".join(groups)


def pn_groups(value: str) -> list[str]:
    return [g for g in norm_pn(value).split("=") if g]


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``*`` = any run of characters, ``?`` = exactly one; everything else literal."""
    parts = ["".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)]
    return re.compile(parts[0], re.DOTALL)


def like_escape(text: str) -> str:
    """Escape a literal for ``LIKE … ESCAPE '!'``."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def wildcard_to_like(pattern: str) -> str:
    out = []
    for c in pattern:
        out.append("%" if c == "*" else "_" if c == "?" else like_escape(c))
    return "".join(out)


def matching_value_problem(vr: str, value: str) -> str | None:
    """Why ``value`` cannot be a matching key value of ``vr`` (None when it can): a malformed
    DA/TM/DT (single value or ``low-high`` range), a malformed UID, or a value longer than the
    VR allows (wildcards included)."""
    if vr in TEMPORAL_FORMS:
        if value.count("-") > 1 or value == "-":
            return f"malformed {vr} range {value[:24]!r}"
        for end in value.split("-"):
            if end and not TEMPORAL_FORMS[vr].match(end.strip()):
                return f"malformed {vr} value {end[:24]!r}"
        return None
    if vr == "UI" and not _UI.match(value):
        return f"malformed UID {value[:24]!r}"
    limit = MAX_LENGTH.get(vr)
    if limit is None:
        return None
    longest = max(len(g) for g in value.split("=")) if vr == "PN" else len(value)
    if longest > limit:
        return f"{vr} value of {longest} characters (at most {limit})"
    return None
