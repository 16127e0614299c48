"""Projection of a stored worklist item onto the keys an SCU asked for.

A C-FIND response contains only the requested keys (K.2.2.1). Sequence keys return the matching
items projected recursively; a zero-length sequence or an empty item asks for the whole sequence.
Absent non-sequence keys come back zero length (type 2 behaviour); absent sequences come back
empty only when Table K.6-1 makes them type 2, otherwise they are left out — which is also what
DCMTK's ``wlmscpfs`` answers for the corpus queries.

The projection works on the stored DICOM JSON (``project_json``): the answer of every transport
is cut straight out of the stored item, without building a pydicom dataset per item. The
returned dict shares attribute entries with the input; callers must not mutate them.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.worklist.match import JsonItem, matches_json
from fhirmwl.worklist.query import KeyMatch, MatchKind, WorklistQuery

# Referenced Study Sequence, Referenced Patient Sequence: return key type 2.
TYPE2_SEQUENCES = frozenset({0x00081110, 0x00081120})


def project_json(item: JsonItem, q: WorklistQuery) -> JsonItem:
    """A new DICOM JSON dict holding exactly the keys of ``q`` (in tag order)."""
    out: JsonItem = {}
    for key in q.keys.values():
        entry = _project_key(item, key)
        if entry is not None:
            out[key.hex] = entry
    return out if _sorted(out) else dict(sorted(out.items()))


def _sorted(out: JsonItem) -> bool:
    keys = list(out)
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


def _project_key(item: JsonItem, key: KeyMatch) -> dict[str, Any] | None:
    entry = item.get(key.hex)
    if key.kind is MatchKind.SEQUENCE or key.vr == "SQ":
        if entry is None or entry.get("vr") != "SQ":
            return {"vr": "SQ", "Value": []} if key.tag in TYPE2_SEQUENCES else None
        if key.item is None:
            return entry
        sub = key.item
        items = [project_json(d, sub) for d in entry.get("Value") or [] if matches_json(sub, d)]
        return {"vr": "SQ", "Value": items}
    if entry is None:
        return {"vr": key.vr}
    return entry


def project(item: Dataset | JsonItem, request: WorklistQuery | Dataset) -> Dataset:
    """``project_json`` for callers holding datasets (tests, file previews): a new Dataset."""
    from fhirmwl.worklist.jsoncodec import dataset_from_dict, dataset_to_dict

    q = request if isinstance(request, WorklistQuery) else WorklistQuery.from_dataset(request)
    data = dataset_to_dict(item) if isinstance(item, Dataset) else item
    return dataset_from_dict(project_json(data, q))
