"""Split an order message into its order groups and read each group's keys.

ORM^O01 (v2.3.1, IHE RAD-2/RAD-4), OMG^O19 and OMI^O23 (v2.5.1) all repeat `ORC [TQ1] OBR [NTE]
[OBX…] [IPC…|ZDS]`; each ORC starts a group. This module finds the groups and the identifiers the
service layer matches on (placer ORC-2/OBR-2, filler ORC-3/OBR-3, accession OBR-18/IPC-1), and
applies the missing-value policy to the accession number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhirmwl.hl7v2.errors import REQUIRED_FIELD_MISSING, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Segment, V2Message
from fhirmwl.mapping.v2_to_fhir.context import MappingContext, MissingValue
from fhirmwl.mapping.v2_to_fhir.datatypes import ei

_PATIENT_SEGMENTS = {"PID", "PD1", "PV1", "PV2", "AL1", "IN1", "IN2", "IN3", "GT1"}


@dataclass
class RawGroup:
    """The segments of one ORC group, with ORC's 1-based sequence for error locations."""

    orc: Segment | None
    orc_seq: int
    obr: Segment | None = None
    tq1: Segment | None = None
    ipcs: list[Segment] = field(default_factory=list)
    zds: Segment | None = None
    notes: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OrderKeys:
    """(system, value) pairs; ``accession_generated`` tells whether the broker invented it."""

    placer: tuple[str, str] | None
    filler: tuple[str, str] | None
    accession: tuple[str, str] | None
    accession_generated: bool

    @property
    def seed(self) -> str:
        """Stable text from the received keys, used to derive generated ids and UIDs."""
        for kind, key in (("PLAC", self.placer), ("FILL", self.filler)):
            if key:
                return f"{kind}|{key[0]}|{key[1]}"
        assert self.accession is not None
        return f"ACSN|{self.accession[0]}|{self.accession[1]}"


def split_groups(msg: V2Message) -> list[RawGroup]:
    groups: list[RawGroup] = []
    orc_seq = 0
    for seg in msg.segments[1:]:
        if seg.id == "ORC":
            orc_seq += 1
            groups.append(RawGroup(seg, orc_seq))
            continue
        if not groups:
            if seg.id == "OBR":  # OBR without ORC (tolerated)
                groups.append(RawGroup(None, 0))
            else:
                continue
        group = groups[-1]
        if seg.id == "OBR":
            if group.obr is not None:  # a second OBR without its own ORC: new group, same ORC
                groups.append(RawGroup(group.orc, group.orc_seq))
                group = groups[-1]
            group.obr = seg
        elif seg.id == "TQ1" and group.tq1 is None:
            group.tq1 = seg
        elif seg.id == "IPC":
            group.ipcs.append(seg)
        elif seg.id == "ZDS" and group.zds is None:
            group.zds = seg
        elif seg.id == "NTE" and group.obr is not None:
            note = seg.comp(3)
            if note:
                group.notes.append(note)
        elif seg.id not in _PATIENT_SEGMENTS:
            group.other.append(seg.id)
    return groups


def _first_ei(
    segs: list[tuple[Segment | None, int]], ctx: MappingContext, default: str
) -> tuple[str, str] | None:
    for seg, n in segs:
        if seg is not None and seg.comp(n, 1):
            return ei(seg, n, ctx, default)
    return None


def order_keys(group: RawGroup, ctx: MappingContext) -> OrderKeys:
    """Placer, filler and accession of a group; raises AE 101 per the missing-value policy."""
    s = ctx.systems
    placer = _first_ei([(group.orc, 2), (group.obr, 2)], ctx, s.placer)
    filler = _first_ei([(group.orc, 3), (group.obr, 3)], ctx, s.filler)
    accession: tuple[str, str] | None = None
    if group.ipcs and group.ipcs[0].comp(1):
        accession = ei(group.ipcs[0], 1, ctx, s.accession)
    elif group.obr is not None and group.obr.comp(18):
        accession = (s.accession, group.obr.comp(18))
    if placer is None and filler is None and accession is None:
        raise V2Error(
            REQUIRED_FIELD_MISSING,
            "no placer (ORC-2/OBR-2), filler (ORC-3/OBR-3) or accession number to match the order",
            ErrorLocation("ORC", max(group.orc_seq, 1), 2),
        )
    generated = False
    if accession is None:
        if ctx.policy.accession_number is MissingValue.REJECT:
            where = ErrorLocation("IPC", 1, 1) if group.ipcs else ErrorLocation("OBR", 1, 18)
            raise V2Error(REQUIRED_FIELD_MISSING, f"accession number ({where}) missing", where)
        seed = OrderKeys(placer, filler, None, False).seed
        accession = (s.accession, ctx.make_id("accession", seed))
        generated = True
    return OrderKeys(placer, filler, accession, generated)
