"""Fast DICOM JSON ↔ Dataset conversion for stored worklist items.

Answers are matched and projected on the stored ``item_json`` itself; a Dataset is decoded only
where one is needed (``mwl export``/``show``, UPS workitems, the import round trip). pydicom's
generic ``Dataset.from_json`` costs about 0.5 ms per worklist item (bulk-data hooks,
per-element validation); this decoder handles exactly what :func:`worklist_row` stores
(strings, PN objects, numbers, sequences, inline binary) about twice as fast. The encoder
used by the row builder produces the same JSON as pydicom's ``to_json_dict`` (tested on the
corpus).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from fhirmwl.worklist.values import PN_GROUPS, pn_text

INT_VRS = frozenset({"US", "UL", "SS", "SL", "SV", "UV", "IS"})
FLOAT_VRS = frozenset({"FL", "FD", "DS"})


def item_from_json(text: str) -> Dataset:
    """Decode a stored item (``mwl show``/``export`` and other callers that need a Dataset;
    answers are projected from the JSON itself, see ``worklist.project``)."""
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
        values = [pn_text(v) for v in values]
    elif vr in ("IS", "DS"):
        values = [str(v) for v in values]
    elif vr == "AT":
        values = [int(v, 16) for v in values]
    return DataElement(tag, vr, values[0] if len(values) == 1 else values)


def item_to_json(ds: Dataset) -> str:
    """DICOM JSON text of an item (same content as pydicom's ``to_json_dict``, faster)."""
    return json.dumps(dataset_to_dict(ds), separators=(",", ":"), ensure_ascii=False)


def dataset_to_dict(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        out[f"{int(elem.tag):08X}"] = _entry(elem)
    return out


def _entry(elem: DataElement) -> dict[str, Any]:
    vr = elem.VR
    entry: dict[str, Any] = {"vr": vr}
    value = elem.value
    if vr == "SQ":
        entry["Value"] = [dataset_to_dict(item) for item in value or []]
        return entry
    if value is None or value == "" or value == b"":
        return entry
    if isinstance(value, bytes):
        entry["InlineBinary"] = base64.b64encode(value).decode("ascii")
        return entry
    entry["Value"] = json_values(vr, list(value) if elem.VM > 1 else [value])
    return entry


def json_values(vr: str, values: list[Any]) -> list[Any]:
    """The DICOM JSON ``Value`` array of one attribute's values (PS3.18 F.2.3)."""
    if vr == "PN":
        return [pn_dict(str(v)) for v in values]
    if vr in INT_VRS:
        return [int(v) for v in values]
    if vr in FLOAT_VRS:
        return [json_number(v) for v in values]
    if vr == "AT":
        return [f"{int(v):08X}" for v in values]
    return [str(v) for v in values]


def pn_dict(value: str) -> dict[str, str]:
    groups = value.split("=")
    return {name: g for name, g in zip(PN_GROUPS, groups, strict=False) if g}


def json_number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() and "." not in str(value) else number
