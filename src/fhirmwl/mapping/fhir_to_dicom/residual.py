"""Keep the DICOM attributes an imported worklist item has no FHIR home for, on its Task.

``fhirmwl mwl import`` turns a folder item into FHIR resources; whatever the forward mapping
cannot reproduce from them (a site's own attributes, LOW/MEDIUM priorities that FHIR folds into
``routine``, private elements …) would be lost. At import the item is rebuilt from the new
resources and compared attribute by attribute (top level, and inside the Scheduled Procedure
Step item of that Task); every attribute whose value differs is kept in a Task extension as DICOM
JSON (``kept``), together with what the mapping produced for it at import (``derived``). When the
item is built again, a kept value is re-emitted as long as the mapping still produces the value
it produced at import — so an imported item round-trips exactly, and a later FHIR change to that
attribute (a new allergy, a changed priority) wins over the imported value.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fhirmwl.fhir.model import DICOM_ATTRIBUTES_EXT

JsonItem = dict[str, Any]
SPS_SEQUENCE = "00400100"
DICOM_JSON = "application/dicom+json"
# Transport, not content: the item's text is Unicode; the answer's set is chosen per peer.
NOT_KEPT = frozenset({"00080005"})
# Values of shared resources found by conditional create (the station Device is keyed by its AE
# title, so two items naming one AE title with different Scheduled Station Names share one
# name): always kept, and re-emitted while the guard attribute (the AE title) is unchanged.
GUARDED = {"00400010": "00400001"}


def residual(original: JsonItem, rebuilt: JsonItem) -> tuple[JsonItem, JsonItem]:
    """``(kept, derived)``: original values of the attributes the rebuilt item does not
    reproduce, and the rebuilt values of those attributes (absent when the mapping gave none)."""
    kept, derived = _diff(original, rebuilt, top=True)
    sps_old, sps_new = _first_sps(original), _first_sps(rebuilt)
    if sps_old is not None:
        sps_kept, sps_derived = _diff(sps_old, sps_new or {}, top=False)
        if sps_kept:
            kept[SPS_SEQUENCE] = {"vr": "SQ", "Value": [sps_kept]}
            derived[SPS_SEQUENCE] = {"vr": "SQ", "Value": [sps_derived]}
    return kept, derived


def _diff(old: JsonItem, new: JsonItem, top: bool) -> tuple[JsonItem, JsonItem]:
    kept: JsonItem = {}
    derived: JsonItem = {}
    for tag, entry in old.items():
        if tag in NOT_KEPT or (top and tag == SPS_SEQUENCE) or tag[:4] in ("0000", "0002"):
            continue
        guard = GUARDED.get(tag) if not top else None
        if guard is not None and guard in old and entry.get("Value"):
            kept[tag], kept[guard] = entry, old[guard]
        elif not _same(entry, new.get(tag)):
            kept[tag] = entry
        else:
            continue
        if tag in new:
            derived[tag] = new[tag]
    return kept, derived


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.get("Value") or None, a.get("InlineBinary")) == (
        b.get("Value") or None,
        b.get("InlineBinary"),
    )


def _first_sps(item: JsonItem) -> JsonItem | None:
    values = (item.get(SPS_SEQUENCE) or {}).get("Value") or []
    return values[0] if values else None


def apply_residual(item: JsonItem, kept: JsonItem, derived: JsonItem) -> JsonItem:
    """``item`` with each kept value re-emitted where the mapping still gives the value it gave
    at import (or still gives none)."""
    out = _apply(item, kept, derived, top=True)
    sps_kept, sps_now = _first_sps(kept), _first_sps(out)
    if sps_kept is not None and sps_now is not None:
        sps_derived = _first_sps(derived) or {}
        new_sps = _apply(sps_now, sps_kept, sps_derived, top=False)
        others = out[SPS_SEQUENCE]["Value"][1:]
        out[SPS_SEQUENCE] = {"vr": "SQ", "Value": [new_sps, *others]}
    return out


def _apply(item: JsonItem, kept: JsonItem, derived: JsonItem, top: bool) -> JsonItem:
    out = dict(item)
    for tag, entry in kept.items():
        if top and tag == SPS_SEQUENCE:
            continue
        guard = GUARDED.get(tag) if not top else None
        if guard is not None and guard in kept:
            if _same(item.get(guard), kept[guard]):
                out[tag] = entry
        elif _same(item.get(tag), derived.get(tag)):
            out[tag] = entry
    return dict(sorted(out.items()))


def residual_extension(kept: JsonItem, derived: JsonItem) -> dict[str, Any] | None:
    """The Task extension carrying a residual (``None`` when nothing needs keeping)."""
    if not kept:
        return None
    return {
        "url": DICOM_ATTRIBUTES_EXT,
        "extension": [
            {"url": "kept", "valueAttachment": _attachment(kept)},
            {"url": "derived", "valueAttachment": _attachment(derived)},
        ],
    }


def _attachment(item: JsonItem) -> dict[str, str]:
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return {"contentType": DICOM_JSON, "data": base64.b64encode(text.encode()).decode("ascii")}


def residual_of(task: dict[str, Any]) -> tuple[JsonItem, JsonItem] | None:
    """``(kept, derived)`` from a Task's extension, or ``None``."""
    for ext in task.get("extension") or []:
        if ext.get("url") != DICOM_ATTRIBUTES_EXT:
            continue
        parts = {
            e.get("url"): json.loads(base64.b64decode(e["valueAttachment"]["data"]))
            for e in ext.get("extension") or []
            if (e.get("valueAttachment") or {}).get("data")
        }
        if parts.get("kept"):
            return parts["kept"], parts.get("derived") or {}
    return None
