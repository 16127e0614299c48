"""HTTP worklist query parameters → the shared :class:`WorklistQuery`.

``$mwl-query`` and the DICOMweb searches take DICOM keys as URL parameters (keyword, ``ggggeeee``
tag or a ``.``-separated path into sequences) with C-FIND matching syntax verbatim. This module
turns those strings into the one query object the C-FIND SCP also uses, so the HTTP forms cannot
drift from C-FIND. What C-FIND cannot express on the wire but HTTP needs — a reason naming the
parameter for malformed values (PS3.18 §8.3.4: 400 Bad Request) — is checked here, before the
shared parser sees the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from fhirmwl.worklist.query import WorklistQuery, WorklistQueryError
from fhirmwl.worklist.values import matching_value_problem

SPS = "ScheduledProcedureStepSequence"
# Attributes of the Scheduled Procedure Step item (PS3.3 C.4.10) that ``$mwl-query`` accepts
# bare, without the ``ScheduledProcedureStepSequence.`` prefix.
SPS_KEYWORDS = frozenset(
    {
        "ScheduledStationAETitle",
        "ScheduledStationName",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepEndDate",
        "ScheduledProcedureStepEndTime",
        "Modality",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepLocation",
        "ScheduledProtocolCodeSequence",
        "PreMedication",
        "ScheduledProcedureStepID",
        "RequestedContrastAgent",
        "ScheduledProcedureStepStatus",
        "CommentsOnTheScheduledProcedureStep",
    }
)

_CS = re.compile(r"^[A-Z0-9 _*?]+$")


def _keyword(part: str, param: str) -> str:
    if tag_for_keyword(part) is not None:
        return part
    if re.fullmatch(r"[0-9A-Fa-f]{8}", part):
        keyword = keyword_for_tag(int(part, 16))
        if keyword:
            return str(keyword)
    raise WorklistQueryError(f"parameter {param!r}: unknown DICOM attribute {part!r}")


def canonical_path(name: str) -> str:
    """``00400100.00400001`` / ``ScheduledStationAETitle`` → ``ScheduledProcedureStepSequence.
    ScheduledStationAETitle``; raises :class:`WorklistQueryError` naming ``name``."""
    parts = [_keyword(p, name) for p in name.split(".")]
    if len(parts) == 1 and parts[0] in SPS_KEYWORDS:
        parts.insert(0, SPS)
    for parent in parts[:-1]:
        if dictionary_VR(parent) != "SQ":
            raise WorklistQueryError(f"parameter {name!r}: {parent} is not a sequence")
    return ".".join(parts)


def validate_value(path: str, value: str, param: str) -> None:
    """Reject values malformed for the attribute's VR (the reason names ``param``)."""
    vr = dictionary_VR(path.rsplit(".", 1)[-1])
    if value == "":
        return
    if vr == "SQ":
        raise WorklistQueryError(f"parameter {param!r}: a sequence key takes no value")
    values = value.split("\\")
    if len(values) > 1 and vr != "UI":
        raise WorklistQueryError(f"parameter {param!r}: several values are only allowed for UIDs")
    for single in values:  # the C-FIND rules (worklist.values), named by the HTTP parameter
        problem = matching_value_problem(vr, single)
        if problem:
            raise WorklistQueryError(f"parameter {param!r}: {problem}")
    if vr == "CS" and not _CS.match(value):
        raise WorklistQueryError(f"parameter {param!r}: malformed CS value {value!r}")
    elif vr == "AE" and (len(value.strip("*")) > 16 or any(ord(c) < 32 for c in value)):
        raise WorklistQueryError(f"parameter {param!r}: malformed AE title {value!r}")


def parse_keys(
    pairs: Iterable[tuple[str, str]], *, strict: bool = True
) -> tuple[dict[str, str], list[str]]:
    """``(canonical path → value, ignored parameter names)``. An attribute may not repeat;
    unknown attributes raise when ``strict``, otherwise they are returned as ignored."""
    keys: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in pairs:
        try:
            path = canonical_path(name)
        except WorklistQueryError:
            if strict:
                raise
            ignored.append(name)
            continue
        if path in keys:
            raise WorklistQueryError(f"parameter {name!r}: attribute {path} is given twice")
        validate_value(path, value, name)
        keys[path] = value
    return keys, ignored


def add_return_keys(keys: dict[str, str], paths: Iterable[str]) -> dict[str, str]:
    """``keys`` plus universal return keys for ``paths`` that are not already present (a bare
    sequence is not added when some of its items' keys are)."""
    out = dict(keys)
    for path in paths:
        if path in out or any(k.startswith(path + ".") for k in out):
            continue
        parent = path.rsplit(".", 1)[0] if "." in path else None
        if parent is not None and out.get(parent) == "" and parent in keys:
            continue  # the whole parent sequence is already requested
        out[path] = ""
    return out


def to_query(keys: dict[str, str]) -> WorklistQuery:
    """The shared query; sub-keys are applied after their sequence so they land in its item."""
    ordered = dict(sorted(keys.items(), key=lambda kv: kv[0].count(".")))
    bare_sq = [p for p in ordered if dictionary_VR(p.rsplit(".", 1)[-1]) == "SQ"]
    for parent in bare_sq:
        if any(k.startswith(parent + ".") for k in ordered):
            del ordered[parent]
    ds = Dataset()
    for path, value in ordered.items():
        _set_path(ds, path.split("."), value)
    return WorklistQuery.from_dataset(ds)


def _set_path(ds: Dataset, path: list[str], value: str) -> None:
    """Like ``WorklistQuery.from_keywords`` but an empty value is ``None`` and matching syntax
    (``?T`` in a CS key) is not validated as a stored value (pydicom would warn)."""
    tag = tag_for_keyword(path[0])
    if tag is None:  # paths were canonicalised to keywords by the caller
        raise ValueError(f"unknown DICOM keyword {path[0]!r}")
    vr = dictionary_VR(path[0])
    if len(path) == 1:
        raw: list[Any] | str | None = [] if vr == "SQ" else (value if value != "" else None)
        ds.add(DataElement(tag, vr, raw, validation_mode=config.IGNORE))
        return
    if tag not in ds or not ds[tag].value:
        ds.add(DataElement(tag, "SQ", [Dataset()]))
    _set_path(ds[tag].value[0], path[1:], value)
