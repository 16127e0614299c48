"""The requested procedures and scheduled steps of one order group (OBR/ZDS or IPC).

ORM^O01 (IHE 2.3.1) carries one requested procedure per OBR: ID in OBR-19, SPS ID in OBR-20,
modality in OBR-24, protocol in OBR-4.4–4.6 and the Study Instance UID in ZDS-1. OMI^O23 carries
one IPC segment per scheduled step: accession IPC-1, requested procedure ID IPC-2, Study Instance
UID IPC-3, SPS ID IPC-4, modality IPC-5, protocol IPC-6, station name IPC-7, location IPC-8 and
station AE titles IPC-9. An OMI without IPC (the corpus has one) falls back to the ORM fields.
Missing IDs and UIDs are generated or rejected per `MissingValuePolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.hl7v2.errors import REQUIRED_FIELD_MISSING, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Segment
from fhirmwl.mapping.v2_to_fhir.context import MappingContext, MissingValue
from fhirmwl.mapping.v2_to_fhir.datatypes import code_system
from fhirmwl.mapping.v2_to_fhir.groups import OrderKeys, RawGroup


@dataclass
class StepSpec:
    """One scheduled procedure step as read from the message (before resources are built)."""

    sps_id: str
    sps_id_generated: bool
    modality: str
    protocol: dict[str, Any] | None
    station_aes: list[str] = field(default_factory=list)
    station_name: str = ""
    location: str = ""
    station_generated: bool = False


@dataclass
class ProcedureSpec:
    """One requested procedure with its Study Instance UID and steps."""

    rp_id: str
    rp_id_generated: bool
    study_uid: str
    study_uid_generated: bool
    steps: list[StepSpec] = field(default_factory=list)


def _protocol(seg: Segment, n: int, first: int) -> dict[str, Any] | None:
    code, meaning, scheme = (seg.comp(n, first + i) for i in range(3))
    if not code and not meaning:
        return None
    concept: dict[str, Any] = {}
    if code:
        c: dict[str, Any] = {"code": code}
        system = code_system(scheme)
        if system:
            c = {"system": system, **c}
        if meaning:
            c["display"] = meaning
        concept["coding"] = [c]
    if meaning:
        concept["text"] = meaning
    return concept


def _value(
    received: str, policy: MissingValue, kind: str, seed: str, where: ErrorLocation, make: Any
) -> tuple[str, bool]:
    if received:
        return received, False
    if policy is MissingValue.REJECT:
        raise V2Error(REQUIRED_FIELD_MISSING, f"{kind} ({where}) missing", where)
    return make(kind, seed), True


def procedures_from_ipc(
    group: RawGroup, keys: OrderKeys, ctx: MappingContext
) -> list[ProcedureSpec]:
    by_rp: dict[str, ProcedureSpec] = {}
    for seq, ipc in enumerate(group.ipcs, 1):
        seed = f"{keys.seed}|IPC{seq}"
        pol = ctx.policy
        rp_id, rp_gen = _value(
            ipc.comp(2), pol.requested_procedure_id, "requested-procedure-id", keys.seed,
            ErrorLocation("IPC", seq, 2), ctx.make_id,
        )  # fmt: skip
        proc = by_rp.get(rp_id)
        if proc is None:
            uid, uid_gen = _value(
                ipc.comp(3), pol.study_instance_uid, "study-instance-uid", f"{keys.seed}|{rp_id}",
                ErrorLocation("IPC", seq, 3), lambda _k, s: ctx.make_uid(s),
            )  # fmt: skip
            proc = by_rp[rp_id] = ProcedureSpec(rp_id, rp_gen, uid, uid_gen)
        sps_id, sps_gen = _value(
            ipc.comp(4), pol.sps_id, "sps-id", seed, ErrorLocation("IPC", seq, 4), ctx.make_id
        )
        aes = [r.split(ipc.delimiters.component)[0].strip() for r in ipc.repetitions(9)]
        step = StepSpec(
            sps_id, sps_gen, ipc.comp(5).upper(), _protocol(ipc, 6, 1),
            [a for a in aes if a], ipc.comp(7), ipc.comp(8),
        )  # fmt: skip
        proc.steps.append(step)
    return list(by_rp.values())


def procedures_from_obr(
    group: RawGroup, keys: OrderKeys, ctx: MappingContext
) -> list[ProcedureSpec]:
    obr = group.obr
    assert obr is not None
    pol = ctx.policy
    rp_id, rp_gen = _value(
        obr.comp(19), pol.requested_procedure_id, "requested-procedure-id", keys.seed,
        ErrorLocation("OBR", 1, 19), ctx.make_id,
    )  # fmt: skip
    zds_uid = group.zds.comp(1) if group.zds is not None else ""
    uid_where = ErrorLocation("ZDS", 1, 1)
    uid, uid_gen = _value(
        zds_uid, pol.study_instance_uid, "study-instance-uid", f"{keys.seed}|{rp_id}", uid_where,
        lambda _k, s: ctx.make_uid(s),
    )  # fmt: skip
    sps_id, sps_gen = _value(
        obr.comp(20), pol.sps_id, "sps-id", f"{keys.seed}|OBR", ErrorLocation("OBR", 1, 20),
        ctx.make_id,
    )  # fmt: skip
    step = StepSpec(sps_id, sps_gen, obr.comp(24).upper(), _protocol(obr, 4, 4))
    return [ProcedureSpec(rp_id, rp_gen, uid, uid_gen, [step])]


def read_procedures(group: RawGroup, keys: OrderKeys, ctx: MappingContext) -> list[ProcedureSpec]:
    procs = (
        procedures_from_ipc(group, keys, ctx)
        if group.ipcs
        else procedures_from_obr(group, keys, ctx)
    )
    for proc in procs:
        for step in proc.steps:
            if step.station_aes:
                continue
            codes = {str(step.protocol.get("code"))} if step.protocol else set()
            ruled = ctx.station_for(step.modality, codes) if ctx.station_for else None
            station = ruled or ctx.default_station_ae
            if station:
                step.station_aes = [station]
                step.station_generated = True
    return procs
