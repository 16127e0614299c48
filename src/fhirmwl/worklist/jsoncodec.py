"""Fast DICOM JSON → Dataset decoding for stored worklist items.

Every C-FIND answer decodes the stored ``item_json`` of each candidate row. pydicom's generic
``Dataset.from_json`` costs about 0.5 ms per worklist item (bulk-data hooks, per-element
validation); this decoder handles exactly what :func:`worklist_row` stores (strings, PN objects,
numbers, sequences, inline binary) several times faster and falls back to pydicom otherwise.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_INT_VRS = frozenset({"US", "UL", "SS", "SL", "SV", "UV", "IS"})
_FLOAT_VRS = frozenset({"FL", "FD", "DS"})


def item_from_json(text: str) -> Dataset:
    return dataset_from_dict(json.loads(text))


def dataset_from_dict(data: dict[str, Any]) -> Dataset:
    ds = Dataset()
    for key, entry in data.items():
        ds.add(_element(int(key, 16), entry))
    return ds


def _element(tag: int, entry: dict[str, Any]) -> DataElement:
    vr = entry["vr"]
    values = entry.get("Value")
    if vr == "SQ":
        return DataElement(tag, vr, Sequence([dataset_from_dict(i) for i in values or []]))
    if "InlineBinary" in entry:
        return DataElement(tag, vr, base64.b64decode(entry["InlineBinary"]))
    if not values:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    if vr == "PN":
        values = [_pn(v) for v in values]
    elif vr in ("IS", "DS"):
        values = [str(v) for v in values]
    elif vr == "AT":
        values = [int(v, 16) for v in values]
    return DataElement(tag, vr, values[0] if len(values) == 1 else values)


def _pn(value: dict[str, str] | str) -> str:
    if isinstance(value, str):
        return value
    groups = [value.get(g, "") for g in _PN_GROUPS]
    return "=".join(groups).rstrip("=")
