"""A write-only stand-in for pydicom's ``Dataset`` that builds DICOM JSON directly.

Why: the worklist item of every Task is rebuilt on each order write, and building it as a
pydicom ``Dataset`` (value conversion and validation per element, about 160 attribute sets per
item) and then encoding it to DICOM JSON cost about a fifth of an order's write. The item
builder (``mapping.fhir_to_dicom.item``) only ever *sets* attributes by keyword and reads back a
few it set; this class records them and emits the same JSON that
``worklist.jsoncodec.dataset_to_dict`` gives for the equivalent ``Dataset`` (tested on the
builder's golden items and the DICOM corpus). It follows the pydicom rules that decide the JSON:
a one-element list is one value, a backslash in a string splits it into values except for the
VRs that allow one (LT, ST, UT, …), ``None`` and ``""`` are zero length, integers and decimals
become JSON numbers. The keyword → (tag, VR) table is pydicom's data dictionary.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.valuerep import ALLOW_BACKSLASH

from fhirmwl.worklist.jsoncodec import json_values

_KEEP_BACKSLASH = frozenset(str(vr) for vr in ALLOW_BACKSLASH)


@lru_cache(maxsize=1024)
def _element(keyword: str) -> tuple[str, str]:
    """(8-hex-digit tag, VR) of a DICOM keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise AttributeError(f"{keyword!r} is not a DICOM keyword")
    return f"{tag:08X}", str(dictionary_VR(tag))


class JsonDataset:
    """Attributes set by keyword (``item.PatientID = "X"``), read back by keyword, emitted as
    DICOM JSON (``to_dict``) in tag order."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __setattr__(self, keyword: str, value: Any) -> None:
        self._values[keyword] = value

    def __getattr__(self, keyword: str) -> Any:
        try:
            return self._values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None

    def __contains__(self, keyword: object) -> bool:
        return keyword in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def to_dict(self) -> dict[str, Any]:
        """The DICOM JSON object (PS3.18 F.2) of this item, attributes in tag order."""
        entries = {}
        for keyword, value in self._values.items():
            tag, vr = _element(keyword)
            entries[tag] = _entry(vr, value)
        return {tag: entries[tag] for tag in sorted(entries)}


def _entry(vr: str, value: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"vr": vr}
    if vr == "SQ":
        entry["Value"] = [item.to_dict() for item in value or []]
        return entry
    if isinstance(value, str) and "\\" in value and vr not in _KEEP_BACKSLASH:
        value = value.split("\\")
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if value is None or value == "" or value == b"" or value == []:
        return entry
    if isinstance(value, bytes):
        entry["InlineBinary"] = base64.b64encode(value).decode("ascii")
        return entry
    entry["Value"] = json_values(vr, list(value) if isinstance(value, list | tuple) else [value])
    return entry
