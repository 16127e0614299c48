"""The transport-neutral worklist query: one parsed form for C-FIND, FHIR and DICOMweb.

A C-FIND identifier, or a set of DICOM ``keyword=value`` strings from the FHIR ``$mwl-query``
and DICOMweb forms, is classified here into the matching types of PS3.4 C.2.2.2 (single value,
wildcard, range, list of UID, universal, sequence). Everything downstream — the SQL
pre-filter, the Python matcher and the projection of return keys — reads this one structure, so
the three transports cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cached_property

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from fhirmwl.errors import BadRequest
from fhirmwl.worklist.values import (
    DATE_TIME_VRS,
    WILDCARD_VRS,
    element_strings,
    matching_value_problem,
    norm_temporal,
)

SPS_SEQUENCE = 0x00400100
SPS_START_DATE = 0x00400002
SPS_START_TIME = 0x00400003
SCHEDULED_STATION_AE = 0x00400001
SPECIFIC_CHARACTER_SET = 0x00080005
TIMEZONE_OFFSET = 0x00080201
# Keys Table K.6-1 marks "-" (never used for matching): treated as return keys only.
NOT_MATCHABLE = frozenset({0x00400440, 0x00380100})
# Identifier-level attributes outside the model (Table K.6-1a): never matched, never returned
# from the stored item.
NOT_KEYS = frozenset({SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET, 0x0040A390})


class WorklistQueryError(BadRequest):
    """The identifier does not fit the Modality Worklist model (C-FIND status A900)."""

    def __init__(self, message: str, tag: int | None = None) -> None:
        super().__init__(message)
        self.tag = tag


class MatchKind(Enum):
    UNIVERSAL = "universal"
    SINGLE = "single"
    WILDCARD = "wildcard"
    RANGE = "range"
    UID_LIST = "uid-list"
    SEQUENCE = "sequence"


@dataclass(frozen=True)
class KeyMatch:
    """One key of the identifier. ``values`` hold single/wildcard/UID values (OR semantics);
    ``low``/``high`` a normalised range (``None`` = open); ``item`` the sequence item query
    (``None`` = zero-length SQ or empty item, i.e. universal sequence)."""

    tag: int
    vr: str
    kind: MatchKind
    values: tuple[str, ...] = ()
    low: str | None = None
    high: str | None = None
    item: WorklistQuery | None = None

    @cached_property
    def hex(self) -> str:
        """The tag as a DICOM JSON attribute name (``"00100010"``)."""
        return f"{self.tag:08X}"

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag) or f"{self.tag:08X}"


@dataclass(frozen=True)
class WorklistQuery:
    """Keys of one identifier level (the top level, or the single item of a sequence key)."""

    keys: dict[int, KeyMatch] = field(default_factory=dict)
    unsupported: frozenset[int] = frozenset()
    specific_character_set: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, identifier: Dataset) -> WorklistQuery:
        """Parse a C-FIND identifier; raises :class:`WorklistQueryError` (A900) when it does not
        fit the model (e.g. a sequence key with more than one item)."""
        charset = tuple(element_strings(identifier.get(SPECIFIC_CHARACTER_SET)))
        return replace(_parse_level(identifier, top=True), specific_character_set=charset)

    @classmethod
    def from_keywords(cls, params: dict[str, str]) -> WorklistQuery:
        """Build from ``Keyword=value`` or ``Keyword.Keyword=value`` strings (DICOMweb style;
        also accepts ``ggggeeee`` tags). An empty value requests the attribute (universal)."""
        ds = Dataset()
        for path, value in params.items():
            _set_path(ds, path.split("."), value)
        return cls.from_dataset(ds)

    @property
    def sps(self) -> WorklistQuery | None:
        key = self.keys.get(SPS_SEQUENCE)
        return key.item if key else None

    def key(self, tag: int) -> KeyMatch | None:
        return self.keys.get(tag)

    def sps_key(self, tag: int) -> KeyMatch | None:
        sps = self.sps
        return sps.keys.get(tag) if sps else None

    def is_universal(self) -> bool:
        """True when no key restricts the match (a sequence of only return keys)."""
        for key in self.keys.values():
            if key.kind is MatchKind.SEQUENCE:
                if key.item is not None and not key.item.is_universal():
                    return False
            elif key.kind is not MatchKind.UNIVERSAL:
                return False
        return True

    def has_unsupported(self) -> bool:
        """True when a key was ignored for matching (C-FIND Pending status FF01)."""
        if self.unsupported:
            return True
        return any(k.item is not None and k.item.has_unsupported() for k in self.keys.values())

    def with_station(self, ae_title: str, force: bool = False) -> WorklistQuery:
        """Constrain a universal/absent Scheduled Station AE Title to ``ae_title`` (access policy
        "restrict each calling AE to its own station"); ``force`` replaces any given key."""
        current = self.sps_key(SCHEDULED_STATION_AE)
        if not force and current is not None and current.kind is not MatchKind.UNIVERSAL:
            return self
        station = KeyMatch(SCHEDULED_STATION_AE, "AE", MatchKind.SINGLE, (ae_title,))
        sps = self.sps or WorklistQuery()
        new_sps = replace(sps, keys={**sps.keys, SCHEDULED_STATION_AE: station})
        sps_key = self.keys.get(SPS_SEQUENCE) or KeyMatch(SPS_SEQUENCE, "SQ", MatchKind.SEQUENCE)
        keys = {**self.keys, SPS_SEQUENCE: replace(sps_key, item=new_sps)}
        return replace(self, keys=dict(sorted(keys.items())))


def _set_path(ds: Dataset, path: list[str], value: str) -> None:
    tag = _resolve_tag(path[0])
    vr = dictionary_VR(tag)
    if len(path) == 1:
        if vr == "SQ":
            ds.add_new(tag, "SQ", [])
        else:
            ds.add_new(tag, vr, value)
        return
    if vr != "SQ":
        raise WorklistQueryError(f"{path[0]} is not a sequence", tag)
    if tag not in ds or not ds[tag].value:
        ds.add_new(tag, "SQ", [Dataset()])
    _set_path(ds[tag].value[0], path[1:], value)


def _resolve_tag(name: str) -> BaseTag:
    tag = tag_for_keyword(name)
    if tag is not None:
        return Tag(tag)
    try:
        return Tag(int(name, 16))
    except ValueError:
        raise WorklistQueryError(f"unknown attribute {name!r}") from None


def _parse_level(ds: Dataset, top: bool) -> WorklistQuery:
    keys: dict[int, KeyMatch] = {}
    unsupported: set[int] = set()
    for base_tag in list(ds.keys()):
        tag = int(base_tag)
        if (tag & 0xFFFF) == 0 or (tag >> 16) in (0x0000, 0x0002) or tag in NOT_KEYS:
            continue
        elem = _element(ds, base_tag)
        if elem.tag.is_private and elem.tag.element < 0x1000:
            continue  # private creator elements are bookkeeping, not keys
        key = _classify(elem)
        if tag in NOT_MATCHABLE and key.kind is not MatchKind.UNIVERSAL:
            unsupported.add(tag)
            key = replace(key, kind=MatchKind.UNIVERSAL, values=(), item=None)
        keys[tag] = key
    return WorklistQuery(keys=keys, unsupported=frozenset(unsupported))


def _element(ds: Dataset, tag: BaseTag) -> DataElement:
    """The decoded element; a value pydicom refuses to decode (too long for its VR, bad
    characters) is peer input that does not fit the model: A900 naming the attribute."""
    try:
        return ds[tag]
    except (ValueError, TypeError, UnicodeError, LookupError, UserWarning) as exc:
        # (pydicom only warns about an over-long value; where warnings are errors, as under
        # pytest, the warning arrives here and gets the same verdict as the length check.)
        raw = ds.get_item(tag)
        vr = str(getattr(raw, "VR", None) or dictionary_VR(tag))
        name = keyword_for_tag(tag) or f"({int(tag):08X})"
        value = getattr(raw, "value", b"")
        text = value.decode("latin-1").strip(" \x00") if isinstance(value, bytes) else ""
        problems = (matching_value_problem(vr, v) for v in text.split("\\"))
        problem = next((p for p in problems if p), None)
        problem = problem or f"cannot decode the {vr} value ({type(exc).__name__})"
        raise WorklistQueryError(f"{name}: {problem}", int(tag)) from None


def _classify(elem: object) -> KeyMatch:
    from pydicom.dataelem import DataElement

    assert isinstance(elem, DataElement)
    tag, vr = int(elem.tag), elem.VR
    if vr == "SQ":
        items = list(elem.value or [])
        if len(items) > 1:
            raise WorklistQueryError(
                f"sequence key {elem.keyword or tag} has {len(items)} items (at most one allowed)",
                tag,
            )
        sub = _parse_level(items[0], top=False) if items else None
        return KeyMatch(tag, vr, MatchKind.SEQUENCE, item=sub if sub and sub.keys else None)
    values = element_strings(elem)
    if not values or values == ["*"]:
        return KeyMatch(tag, vr, MatchKind.UNIVERSAL)
    for value in values:
        problem = matching_value_problem(vr, value)
        if problem:
            raise WorklistQueryError(f"{elem.keyword or f'({tag:08X})'}: {problem}", tag)
    if vr == "UI":
        kind = MatchKind.UID_LIST if len(values) > 1 else MatchKind.SINGLE
        return KeyMatch(tag, vr, kind, tuple(values))
    if vr in DATE_TIME_VRS:
        return _temporal_key(tag, vr, values)
    if vr in WILDCARD_VRS and any("*" in v or "?" in v for v in values):
        return KeyMatch(tag, vr, MatchKind.WILDCARD, tuple(values))
    return KeyMatch(tag, vr, MatchKind.SINGLE, tuple(values))


def _temporal_key(tag: int, vr: str, values: list[str]) -> KeyMatch:
    if len(values) != 1:
        raise WorklistQueryError(f"{vr} key ({tag:08X}) must hold one value or one range", tag)
    value = values[0]
    if "-" not in value:
        return KeyMatch(tag, vr, MatchKind.SINGLE, (norm_temporal(vr, value),))
    low, _, high = value.partition("-")
    if not low and not high:
        return KeyMatch(tag, vr, MatchKind.UNIVERSAL)
    return KeyMatch(
        tag,
        vr,
        MatchKind.RANGE,
        low=norm_temporal(vr, low) if low else None,
        high=norm_temporal(vr, high) if high else None,
    )
