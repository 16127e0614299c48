"""ORM^O01, OMG^O19 and OMI^O23 → one FHIR R5 transaction Bundle plus an `OrderMessage` summary.

The Bundle holds the full resource graph of every order group the message carries; the summary
lists, per group, the order control (ORC-1, ORC-5), the resulting action and the keys (placer,
filler, accession, requested procedure IDs, SPS IDs, Study Instance UIDs), so that the service
layer can match existing orders and apply the order-control rules (spec/ihe-appendix-b.md §4.3)
before it commits the Bundle. For cancel/discontinue/status-only messages the Patient and
Encounter are not updated (IHE RAD-13: PID/PV1 are not used to update the patient); the resources
refer to the Patient with a conditional reference instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.hl7v2.errors import (
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    ErrorLocation,
    V2Error,
)
from fhirmwl.hl7v2.message import V2Message
from fhirmwl.mapping.v2_to_fhir.bundle import (
    conditional_reference,
    create_entry,
    dedupe,
    put_entry,
    transaction,
)
from fhirmwl.mapping.v2_to_fhir.clinical import clinical_entries
from fhirmwl.mapping.v2_to_fhir.context import MappingContext
from fhirmwl.mapping.v2_to_fhir.datatypes import ts_to_fhir
from fhirmwl.mapping.v2_to_fhir.groups import OrderKeys, RawGroup, order_keys, split_groups
from fhirmwl.mapping.v2_to_fhir.order_control import OrderAction, order_control_outcome
from fhirmwl.mapping.v2_to_fhir.patient import map_encounter, map_patient
from fhirmwl.mapping.v2_to_fhir.procedures import read_procedures
from fhirmwl.mapping.v2_to_fhir.resources import (
    GroupRefs,
    build_isr,
    build_rp,
    build_study,
    build_task,
    key_entry,
    practitioner_entry,
    station_entries,
)

_UPDATES_PATIENT = {OrderAction.CREATE, OrderAction.UPDATE, OrderAction.START}


@dataclass
class OrderGroup:
    """What one ORC group asks for, and where its resources sit in the Bundle."""

    index: int
    order_control: str
    order_status: str
    action: OrderAction
    request_status: str
    task_status: str | None
    placer: tuple[str, str] | None
    filler: tuple[str, str] | None
    accession: tuple[str, str]
    accession_generated: bool
    isr_full_url: str
    requested_procedure_ids: list[str] = field(default_factory=list)
    sps_ids: list[str] = field(default_factory=list)
    study_instance_uids: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)


@dataclass
class OrderMessage:
    message_type: str
    trigger_event: str
    control_id: str
    sending_application: str
    sending_facility: str
    message_datetime: str | None
    patient_identifier: tuple[str, str]
    groups: list[OrderGroup]
    bundle: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _outcome(group: RawGroup) -> tuple[str, str, Any]:
    orc = group.orc
    orc1 = orc.comp(1).upper() if orc is not None else "NW"
    orc5 = orc.comp(5).upper() if orc is not None else ""
    loc = ErrorLocation("ORC", max(group.orc_seq, 1), 1)
    if not orc1:
        raise V2Error(REQUIRED_FIELD_MISSING, "ORC-1 order control missing", loc)
    outcome = order_control_outcome(orc1, orc5)
    if outcome is None:
        raise V2Error(TABLE_VALUE_NOT_FOUND, f"ORC-1 order control {orc1!r} not supported", loc)
    return orc1, orc5, outcome


def _map_group(
    index: int, group: RawGroup, refs: GroupRefs, ctx: MappingContext, entries: list[Any]
) -> OrderGroup | None:
    orc1, orc5, outcome = _outcome(group)
    if outcome.action is OrderAction.IGNORE:
        return None
    if group.obr is None:
        where = ErrorLocation("OBR", max(group.orc_seq, 1))
        raise V2Error(
            REQUIRED_FIELD_MISSING, "order group without OBR (not an imaging order)", where
        )
    keys: OrderKeys = order_keys(group, ctx)
    procs = read_procedures(group, keys, ctx)
    isr_url = ctx.full_url()
    entries.append(key_entry(isr_url, build_isr(group, keys, outcome, refs, ctx)))
    prac_entry, requester = practitioner_entry(group, ctx, [("ORC", 12), ("OBR", 16)])
    if requester:
        entries[-1]["resource"]["requester"] = requester
    if prac_entry:
        entries.append(prac_entry)
    assert keys.accession is not None
    result = OrderGroup(
        index, orc1, orc5, outcome.action, outcome.request_status, outcome.task_status,
        keys.placer, keys.filler, keys.accession, keys.accession_generated, isr_url,
    )  # fmt: skip
    if keys.accession_generated:
        result.generated.append("accession-number")
    task_status = outcome.task_status or "requested"
    for proc in procs:
        rp_url = ctx.full_url()
        entries.append(
            key_entry(rp_url, build_rp(group, proc, isr_url, outcome.request_status, refs))
        )
        entries.append(key_entry(ctx.full_url(), build_study(proc, rp_url, isr_url, refs)))
        result.requested_procedure_ids.append(proc.rp_id)
        result.study_instance_uids.append(proc.study_uid)
        result.generated += ["requested-procedure-id"] * proc.rp_id_generated
        result.generated += ["study-instance-uid"] * proc.study_uid_generated
        for step in proc.steps:
            task = build_task(group, step, rp_url, task_status, refs, ctx)
            stations = station_entries(step, ctx, refs.stations)
            if stations:
                task["requestedPerformer"] = [{"reference": {"reference": u}} for u, _ in stations]
            entries.append(key_entry(ctx.full_url(), task))
            entries.extend(e for _, e in stations if e is not None)
            result.sps_ids.append(step.sps_id)
            result.generated += ["sps-id"] * step.sps_id_generated
    return result


def map_order_message(msg: V2Message, ctx: MappingContext) -> OrderMessage:
    """Map an order message; raises `V2Error` (AE) with the table 0357 code on bad content."""
    pid = msg.first("PID")
    if pid is None:
        raise V2Error(REQUIRED_FIELD_MISSING, "PID segment missing", ErrorLocation("PID"))
    patient = map_patient(pid, ctx)
    primary = patient["identifier"][0]
    groups = split_groups(msg)
    if not groups:
        raise V2Error(REQUIRED_FIELD_MISSING, "no ORC/OBR order group", ErrorLocation("ORC"))
    actions = {_outcome(g)[2].action for g in groups}
    update_patient = bool(actions & _UPDATES_PATIENT)
    entries: list[dict[str, Any]] = []
    patient_ref = conditional_reference("Patient", primary)
    encounter_ref: dict[str, str] | None = None
    if update_patient:
        patient_url = ctx.full_url()
        entries.append(put_entry(patient_url, patient, primary))
        patient_ref = {"reference": patient_url}
    pv1 = msg.first("PV1")
    if pv1 is not None:
        encounter, practitioners = map_encounter(pv1, ctx, patient_ref, msg.first("PV2"))
        if encounter is not None:
            visit = encounter["identifier"][0]
            encounter_ref = conditional_reference("Encounter", visit)
            if update_patient:
                enc_url = ctx.full_url()
                entries.append(put_entry(enc_url, encounter, visit))
                entries.extend(_practitioner_entries(practitioners))
                encounter_ref = {"reference": enc_url}
    if update_patient:  # AL1, OBX, PV1-15, OBR-12/13 → the patient's clinical resources
        entries += clinical_entries(
            msg, patient_ref, (primary.get("system", ""), primary["value"]), ctx
        )
    refs = GroupRefs(patient_ref, encounter_ref)
    mapped = [_map_group(i, g, refs, ctx, entries) for i, g in enumerate(groups, 1)]
    return OrderMessage(
        msg.message_code, msg.trigger_event, msg.control_id, msg.msh.comp(3), msg.msh.comp(4),
        ts_to_fhir(msg.msh.comp(7), ctx.timezone, ErrorLocation("MSH", 1, 7)),
        (primary.get("system", ""), primary["value"]), [g for g in mapped if g is not None],
        transaction(dedupe(entries)), list(msg.warnings),
    )  # fmt: skip


def _practitioner_entries(practitioners: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [create_entry(u, p, p["identifier"][0]) for u, p in practitioners if "identifier" in p]
