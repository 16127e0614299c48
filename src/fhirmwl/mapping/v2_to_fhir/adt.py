"""ADT A01/A04/A08/A31 (update), A40 (merge) and A47 (identifier change) → patient commands.

ADT messages do not create orders; they change the Patient (and Encounter) that orders point to.
A merge or an identifier change needs the stored state (which Patient survives, which orders
move), so the mapping returns plain command objects and the service layer applies them. Each
PID/MRG pair of an A40 or A47 becomes one command (a message may carry several pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fhirmwl.hl7v2.errors import REQUIRED_FIELD_MISSING, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Segment, V2Message
from fhirmwl.mapping.v2_to_fhir.bundle import (
    conditional_reference,
    create_entry,
    put_entry,
    transaction,
)
from fhirmwl.mapping.v2_to_fhir.context import MappingContext
from fhirmwl.mapping.v2_to_fhir.datatypes import cx, xpn
from fhirmwl.mapping.v2_to_fhir.patient import map_encounter, map_patient

UPDATE_TRIGGERS = {"A01", "A04", "A08", "A31"}
MERGE_TRIGGERS = {"A40"}
CHANGE_ID_TRIGGERS = {"A47"}
ADT_TRIGGERS = UPDATE_TRIGGERS | MERGE_TRIGGERS | CHANGE_ID_TRIGGERS


class PatientCommandKind(StrEnum):
    UPDATE = "update"  # upsert Patient (and Encounter) by identifier
    MERGE = "merge"  # prior patient merged into the surviving one (Patient.link replaced-by)
    CHANGE_IDENTIFIER = "change-identifier"  # the prior identifier becomes the new one


@dataclass
class PatientCommand:
    kind: PatientCommandKind
    patient: dict[str, Any]  # the Patient as the message describes it (surviving / new id)
    identifier: dict[str, Any]  # its primary identifier (PID-3)
    prior_identifier: dict[str, Any] | None = None  # MRG-1 (A40, A47)
    prior_name: dict[str, Any] | None = None  # MRG-7
    encounter: dict[str, Any] | None = None  # PV1 (A01/A04/A08/A31), subject = conditional ref
    # UPDATE only: a ready transaction (conditional PUT of Patient, and Encounter if PV1-19)
    bundle: dict[str, Any] | None = None


@dataclass
class AdtMessage:
    trigger_event: str
    control_id: str
    sending_application: str
    sending_facility: str
    commands: list[PatientCommand] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _pairs(msg: V2Message) -> list[tuple[Segment, int, Segment | None]]:
    pairs: list[tuple[Segment, int, Segment | None]] = []
    seq = 0
    for seg in msg.segments:
        if seg.id == "PID":
            seq += 1
            pairs.append((seg, seq, None))
        elif seg.id == "MRG" and pairs and pairs[-1][2] is None:
            pairs[-1] = (pairs[-1][0], pairs[-1][1], seg)
    return pairs


def _prior(mrg: Segment | None, seq: int, ctx: MappingContext) -> dict[str, Any]:
    ident = cx(mrg, 1, 1, ctx, ctx.systems.patient) if mrg is not None else None
    if ident is None:
        where = ErrorLocation("MRG", seq, 1)
        raise V2Error(REQUIRED_FIELD_MISSING, "MRG-1 prior patient identifier missing", where)
    return ident


def _update(
    msg: V2Message, patient: dict[str, Any], ident: dict[str, Any], ctx: MappingContext
) -> PatientCommand:
    cmd = PatientCommand(PatientCommandKind.UPDATE, patient, ident)
    patient_url = ctx.full_url()
    entries = [put_entry(patient_url, patient, ident)]
    pv1 = msg.first("PV1")
    if pv1 is not None:
        encounter, practitioners = map_encounter(
            pv1, ctx, conditional_reference("Patient", ident), msg.first("PV2")
        )
        cmd.encounter = encounter
        if encounter is not None:
            bundled = {**encounter, "subject": {"reference": patient_url}}
            entries.append(put_entry(ctx.full_url(), bundled, encounter["identifier"][0]))
            entries += [
                create_entry(u, p, p["identifier"][0])
                for u, p in practitioners
                if "identifier" in p
            ]
    cmd.bundle = transaction(entries)
    return cmd


def map_adt_message(msg: V2Message, ctx: MappingContext) -> AdtMessage:
    trigger = msg.trigger_event
    result = AdtMessage(trigger, msg.control_id, msg.msh.comp(3), msg.msh.comp(4))
    result.warnings = list(msg.warnings)
    pairs = _pairs(msg)
    if not pairs:
        raise V2Error(REQUIRED_FIELD_MISSING, "PID segment missing", ErrorLocation("PID"))
    for pid, seq, mrg in pairs:
        patient = map_patient(pid, ctx, seq)
        ident = patient["identifier"][0]
        if trigger in UPDATE_TRIGGERS:
            result.commands.append(_update(msg, patient, ident, ctx))
            break  # one PID per update message
        kind = (
            PatientCommandKind.MERGE
            if trigger in MERGE_TRIGGERS
            else PatientCommandKind.CHANGE_IDENTIFIER
        )
        prior_name = xpn(mrg, 7) if mrg is not None else None
        result.commands.append(
            PatientCommand(kind, patient, ident, _prior(mrg, seq, ctx), prior_name)
        )
    return result
