"""The one worklist matcher (PS3.4 C.2.2.2 applied to Table K.6-1).

``matches`` is authoritative: the SQL pre-filter only narrows the candidates, and every row it
returns is decided here. It works on the stored form of an item, DICOM JSON (PS3.18 F.2), so a
C-FIND or HTTP answer never builds pydicom datasets to decide a match (a pydicom dataset per
item cost about 1 ms; design.md "A worklist answer is a projection"). Rules implemented (and
documented in docs/dicom-conformance.md):

* zero-length / absent entity values fail every non-universal key (K.2.2.1);
* multi-valued entity values match when any value matches; several values in a non-UID key
  are OR-ed (undefined by the standard without extended negotiation);
* PN matching is case-insensitive, ignores empty trailing components and, when the key has no
  ``=``, may match any single component group of the entity;
* SPS Start Date and Time are combined into one period when both are non-universal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.worklist.query import (
    SPS_START_DATE,
    SPS_START_TIME,
    KeyMatch,
    MatchKind,
    WorklistQuery,
)
from fhirmwl.worklist.values import (
    DATE_TIME_VRS,
    TIME_MAX,
    TIME_MIN,
    json_strings,
    norm_date,
    norm_pn,
    norm_temporal,
    norm_time,
    pn_groups,
    wildcard_regex,
)

JsonItem = dict[str, Any]  # one item (or sequence item) in DICOM JSON form


def matches(q: WorklistQuery, item: JsonItem | Dataset) -> bool:
    """True when ``item`` (one worklist item, DICOM JSON or a Dataset) satisfies every key."""
    if isinstance(item, Dataset):
        from fhirmwl.worklist.jsoncodec import dataset_to_dict

        item = dataset_to_dict(item)
    return matches_json(q, item)


def matches_json(q: WorklistQuery, item: JsonItem) -> bool:
    combined = _combined_keys(q)
    for tag, key in q.keys.items():
        if key.kind is MatchKind.UNIVERSAL or (combined and tag in combined):
            continue
        if not _match_key(key, item):
            return False
    return not combined or _match_combined(combined[SPS_START_DATE], combined[SPS_START_TIME], item)


def _combined_keys(q: WorklistQuery) -> dict[int, KeyMatch] | None:
    date, time = q.keys.get(SPS_START_DATE), q.keys.get(SPS_START_TIME)
    if date is None or time is None:
        return None
    if MatchKind.UNIVERSAL in (date.kind, time.kind):
        return None
    return {SPS_START_DATE: date, SPS_START_TIME: time}


def _match_key(key: KeyMatch, item: JsonItem) -> bool:
    entry = item.get(key.hex)
    if key.kind is MatchKind.SEQUENCE:
        if key.item is None or key.item.is_universal():
            return True
        if entry is None or entry.get("vr") != "SQ":
            return False
        return any(matches_json(key.item, sub) for sub in entry.get("Value") or [])
    values = json_strings(entry)
    if not values:
        return False
    vr = entry.get("vr", key.vr) if entry is not None else key.vr
    return any(match_value(key, vr, v) for v in values)


def match_value(key: KeyMatch, vr: str, value: str) -> bool:
    """Match one entity value against a non-sequence key."""
    if key.kind is MatchKind.UNIVERSAL:
        return True
    if key.kind is MatchKind.RANGE:
        norm = norm_temporal(vr, value)
        return (key.low is None or norm >= key.low) and (key.high is None or norm <= key.high)
    if vr in DATE_TIME_VRS:
        return norm_temporal(vr, value) in key.values
    if vr == "PN":
        return _match_pn(key, value)
    if key.kind is MatchKind.WILDCARD:
        return any(wildcard_regex(p).fullmatch(value) for p in key.values)
    return value in key.values


def _match_pn(key: KeyMatch, value: str) -> bool:
    whole = norm_pn(value)
    candidates = [whole, *pn_groups(value)]
    for pattern in key.values:
        pat = norm_pn(pattern) if key.kind is MatchKind.SINGLE else pattern.upper()
        targets: Iterable[str] = [whole] if "=" in pattern else candidates
        if key.kind is MatchKind.WILDCARD:
            regex = wildcard_regex(pat)
            if any(regex.fullmatch(t) for t in targets):
                return True
        elif pat in targets:
            return True
    return False


def time_bounds(date: KeyMatch, time: KeyMatch) -> tuple[tuple[str, str] | None, ...]:
    """Lower and upper (date, time) bounds of the combined SPS start period; ``None`` = open."""
    d_lo, d_hi = _bounds(date)
    t_lo, t_hi = _bounds(time)
    low = (d_lo, t_lo or TIME_MIN) if d_lo else None
    high = (d_hi, t_hi or TIME_MAX) if d_hi else None
    return low, high


def _bounds(key: KeyMatch) -> tuple[str | None, str | None]:
    if key.kind is MatchKind.RANGE:
        return key.low, key.high
    return key.values[0], key.values[0]


def _match_combined(date: KeyMatch, time: KeyMatch, item: JsonItem) -> bool:
    dates = json_strings(item.get(date.hex))
    times = json_strings(item.get(time.hex))
    if not dates or not times:
        return False
    point = (norm_date(dates[0]), norm_time(times[0]))
    low, high = time_bounds(date, time)
    return (low is None or point >= low) and (high is None or point <= high)
