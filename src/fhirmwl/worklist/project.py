"""Projection of a stored worklist item onto the keys an SCU asked for.

A C-FIND response contains only the requested keys (K.2.2.1). Sequence keys return the matching
items projected recursively; a zero-length sequence or an empty item asks for the whole sequence.
Absent non-sequence keys come back zero length (type 2 behaviour); absent sequences come back
empty only when Table K.6-1 makes them type 2, otherwise they are left out — which is also what
DCMTK's ``wlmscpfs`` answers for the corpus queries.
"""

from __future__ import annotations

import copy

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from fhirmwl.worklist.match import matches
from fhirmwl.worklist.query import KeyMatch, MatchKind, WorklistQuery

# Referenced Study Sequence, Referenced Patient Sequence: return key type 2.
TYPE2_SEQUENCES = frozenset({0x00081110, 0x00081120})


def project(item: Dataset, request: WorklistQuery | Dataset) -> Dataset:
    """Return a new dataset holding exactly the requested keys of ``item``."""
    q = request if isinstance(request, WorklistQuery) else WorklistQuery.from_dataset(request)
    out = Dataset()
    for key in q.keys.values():
        elem = _project_key(item, key)
        if elem is not None:
            out.add(elem)
    return out


def _project_key(item: Dataset, key: KeyMatch) -> DataElement | None:
    elem = item.get(key.tag)
    if key.kind is MatchKind.SEQUENCE or key.vr == "SQ":
        if elem is None or elem.VR != "SQ":
            return DataElement(key.tag, "SQ", Sequence()) if key.tag in TYPE2_SEQUENCES else None
        if key.item is None:
            return DataElement(key.tag, "SQ", Sequence([copy.deepcopy(d) for d in elem.value]))
        sub = key.item
        items = [project(d, sub) for d in elem.value if matches(sub, d)]
        return DataElement(key.tag, "SQ", Sequence(items))
    if elem is None:
        return DataElement(key.tag, key.vr, None)
    return DataElement(key.tag, elem.VR, copy.deepcopy(elem.value))
