"""Build the guide's resources for one order group: ImagingServiceRequest, RequestedProcedure,
ScheduledProcedureStep (Task), ImagingStudy and the scheduled-station Device.

Field → element choices follow docs/hl7v2.md (the table there is the reference): the ISR carries
accession (ACSN), placer (PLAC) and filler (FILL) numbers, OBR-4 as orderable code, ORC-9
authoredOn, ORC-12/OBR-16 requester, OBR-31 reason and NTE notes; the RP carries OBR-19/IPC-2,
OBR-44 (else OBR-4) and the priority; the Task carries OBR-20/IPC-4, modality, protocol, start
time and station; OBR-30/OBR-43 become the RP's transport ``orderDetail`` and ORC-28 the ISR's
``meta.security`` (mapping/fhir_to_dicom/order_details.py). Values the broker invented are
tagged with `urn:fhirmwl:generated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.fhir.model import (
    ACSN,
    DICOM_UID_SYSTEM,
    FILL,
    PATIENT_TRANSPORT,
    PLAC,
    PROFILE_ISR,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    RPID,
    SPSID,
    V2_CONFIDENTIALITY,
    V2_TRANSPORT_MODE,
    V3_CONFIDENTIALITY,
    WORKLIST_DETAIL,
    generated_tag,
    modality_input,
    typed_identifier,
)
from fhirmwl.hl7v2.errors import ErrorLocation
from fhirmwl.mapping.v2_to_fhir.bundle import add_tag, create_entry, put_entry
from fhirmwl.mapping.v2_to_fhir.context import MappingContext
from fhirmwl.mapping.v2_to_fhir.datatypes import cwe, ts_to_fhir, xcn
from fhirmwl.mapping.v2_to_fhir.groups import OrderKeys, RawGroup
from fhirmwl.mapping.v2_to_fhir.order_control import ControlOutcome
from fhirmwl.mapping.v2_to_fhir.procedures import ProcedureSpec, StepSpec

_PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}


@dataclass
class GroupRefs:
    """References every resource of a group needs."""

    patient: dict[str, str]
    encounter: dict[str, str] | None
    stations: dict[str, str] = field(default_factory=dict)  # AE title → fullUrl in this Bundle


def _policy_tag(code: str) -> dict[str, str]:
    return generated_tag(code, "generated: value missing from the message (policy generate)")


def _priority(group: RawGroup) -> str | None:
    code = ""
    if group.tq1 is not None:
        code = group.tq1.comp(9)
    if not code and group.orc is not None:
        code = group.orc.comp(7, 6)
    if not code and group.obr is not None:
        code = group.obr.comp(27, 6) or group.obr.comp(5)
    # S → stat, A → asap, R → routine; any other v2 priority (P, C, T, TS…) → urgent
    return _PRIORITY.get(code.upper()[:1], "urgent") if code else None


def practitioner_entry(
    group: RawGroup, ctx: MappingContext, candidates: list[tuple[str, int]]
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """First non-empty XCN among ``candidates`` (segment id, field) → (entry, reference)."""
    segs = {"ORC": group.orc, "OBR": group.obr}
    for seg_id, n in candidates:
        seg = segs[seg_id]
        prac = xcn(seg, n, ctx) if seg is not None else None
        if prac is None:
            continue
        display = " ".join(
            [
                *prac.get("name", [{}])[0].get("given", []),
                prac.get("name", [{}])[0].get("family", ""),
            ]
        ).strip()
        if "identifier" not in prac:
            return None, {"display": display}
        url = ctx.full_url()
        ref = {"reference": url, "display": display} if display else {"reference": url}
        return create_entry(url, prac, prac["identifier"][0]), ref
    return None, None


def build_isr(
    group: RawGroup, keys: OrderKeys, outcome: ControlOutcome, refs: GroupRefs, ctx: MappingContext
) -> dict[str, Any]:
    assert keys.accession is not None
    acsn = typed_identifier(ACSN, keys.accession[1], keys.accession[0])
    isr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [PROFILE_ISR]},
        "identifier": [acsn],
        "status": outcome.request_status,
        "intent": "order",
        "subject": refs.patient,
    }
    if keys.accession_generated:
        add_tag(isr, _policy_tag("accession-number"))
    for code, key in ((PLAC, keys.placer), (FILL, keys.filler)):
        if key:
            isr["identifier"].append(typed_identifier(code, key[1], key[0]))
    if group.obr is not None:
        concept = cwe(group.obr, 4, alternate=False)
        if concept:
            isr["code"] = {"concept": concept}
        reason = cwe(group.obr, 31)
        if reason:
            isr["reason"] = [{"concept": reason}]
    if refs.encounter:
        isr["encounter"] = refs.encounter
    if group.orc is not None:
        authored = ts_to_fhir(
            group.orc.comp(9), ctx.timezone, ErrorLocation("ORC", group.orc_seq, 9)
        )
        if authored:
            isr["authoredOn"] = authored
    priority = _priority(group)
    if priority:
        isr["priority"] = priority
    if group.notes:
        isr["note"] = [{"text": t} for t in group.notes]
    label = _confidentiality(group)
    if label:
        isr["meta"]["security"] = [label]
    return isr


# ORC-28 (table 0177): V and R are the v3 confidentiality levels of the same name; U "usual
# control" is no constraint; the other codes (VIP, EMP, PSY, HIV …) are kept as v2 labels.
_V3_LEVEL = {"V": "V", "R": "R"}


def _confidentiality(group: RawGroup) -> dict[str, str] | None:
    orc = group.orc
    code = orc.comp(28).strip().upper() if orc is not None else ""
    if not code or code == "U" or orc is None:
        return None
    system = V3_CONFIDENTIALITY if code in _V3_LEVEL else V2_CONFIDENTIALITY
    label = {"system": system, "code": code}
    if orc.comp(28, 2):
        label["display"] = orc.comp(28, 2)
    return label


def _transport(group: RawGroup) -> dict[str, Any] | None:
    """OBR-30 Transportation Mode (table 0124: CART, PORT, WALK, WHLC) as the coding, OBR-43
    Planned Patient Transport Comment as the text of one ``orderDetail`` parameter."""
    obr = group.obr
    if obr is None:
        return None
    concept: dict[str, Any] = {}
    if obr.comp(30):
        concept["coding"] = [{"system": V2_TRANSPORT_MODE, "code": obr.comp(30)}]
    comment = obr.comp(43, 2) or obr.comp(43, 1)
    if comment:
        concept["text"] = comment
    if not concept:
        return None
    code = {"coding": [{"system": WORKLIST_DETAIL, "code": PATIENT_TRANSPORT[1]}]}
    return {"parameter": [{"code": code, "valueCodeableConcept": concept}]}


def build_rp(
    group: RawGroup, proc: ProcedureSpec, isr_url: str, status: str, refs: GroupRefs
) -> dict[str, Any]:
    rp: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [PROFILE_RP]},
        "identifier": [typed_identifier(RPID, proc.rp_id)],
        "basedOn": [{"reference": isr_url}],
        "status": status,
        "intent": "order",
        "subject": refs.patient,
    }
    if proc.rp_id_generated:
        add_tag(rp, _policy_tag("requested-procedure-id"))
    if group.obr is not None:
        concept = cwe(group.obr, 44, alternate=False) or cwe(group.obr, 4, alternate=False)
        if concept:
            rp["code"] = {"concept": concept}
        reason = cwe(group.obr, 31)
        if reason:
            rp["reason"] = [{"concept": reason}]
    if refs.encounter:
        rp["encounter"] = refs.encounter
    priority = _priority(group)
    if priority:
        rp["priority"] = priority
    transport = _transport(group)
    if transport:
        rp["orderDetail"] = [transport]
    return rp


def _start(group: RawGroup, ctx: MappingContext) -> str | None:
    if group.tq1 is not None and group.tq1.comp(7):
        return ts_to_fhir(group.tq1.comp(7), ctx.timezone, ErrorLocation("TQ1", 1, 7))
    if group.orc is not None and group.orc.comp(7, 4):
        where = ErrorLocation("ORC", group.orc_seq, 7, component=4)
        return ts_to_fhir(group.orc.comp(7, 4), ctx.timezone, where)
    if group.obr is not None and group.obr.comp(27, 4):
        return ts_to_fhir(group.obr.comp(27, 4), ctx.timezone, ErrorLocation("OBR", 1, 27, None, 4))
    return None


def build_task(
    group: RawGroup,
    step: StepSpec,
    rp_url: str,
    task_status: str,
    refs: GroupRefs,
    ctx: MappingContext,
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [PROFILE_SPS]},
        "identifier": [typed_identifier(SPSID, step.sps_id)],
        "basedOn": [{"reference": rp_url}],
        "status": task_status,
        "intent": "plan",
        "for": refs.patient,
    }
    if step.sps_id_generated:
        add_tag(task, _policy_tag("sps-id"))
    if step.protocol:
        task["code"] = step.protocol
    if refs.encounter:
        task["encounter"] = refs.encounter
    start = _start(group, ctx)
    if start:
        task["requestedPeriod"] = {"start": start}
    if group.tq1 is not None and group.tq1.comp(8):
        end = ts_to_fhir(group.tq1.comp(8), ctx.timezone, ErrorLocation("TQ1", 1, 8))
        task.setdefault("requestedPeriod", {})["end"] = end
    owner = technician(group)
    if owner:
        task["owner"] = owner
    if step.modality:
        task["input"] = [modality_input(step.modality)]
    if step.location:
        task["location"] = {"display": step.location}
    return task


def technician(group: RawGroup) -> dict[str, Any] | None:
    """OBR-34 (NDL; its CNN name in sub-components, or in components as dcm4che sends it)."""
    obr = group.obr
    if obr is None or not obr.raw(34):
        return None
    subs = obr.subcomponents(34, 1)
    if len(subs) > 1:
        ident, parts = subs[0], subs[1:4]
    else:
        ident, parts = "", [obr.comp(34, i) for i in (1, 2, 3)]
    name = " ".join(p for p in [*parts[1:], parts[0]] if p)
    ref: dict[str, Any] = {"display": name} if name else {}
    if ident:
        ref["identifier"] = {"value": ident}
    return ref or None


def build_study(proc: ProcedureSpec, rp_url: str, isr_url: str, refs: GroupRefs) -> dict[str, Any]:
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "meta": {"profile": [PROFILE_STUDY]},
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{proc.study_uid}"}],
        "status": "registered",
        "subject": refs.patient,
        "basedOn": [{"reference": rp_url}, {"reference": isr_url}],
    }
    if proc.study_uid_generated:
        add_tag(study, _policy_tag("study-instance-uid"))
    if refs.encounter:
        study["encounter"] = refs.encounter
    return study


def station_entries(
    step: StepSpec, ctx: MappingContext, seen: dict[str, str]
) -> list[tuple[str, dict[str, Any] | None]]:
    """(fullUrl, conditional-create entry) per station AE title (IPC-9 repetitions); an AE title
    already in ``seen`` (same message) is referenced again without a second entry."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    for ae in step.station_aes:
        if ae in seen:
            out.append((seen[ae], None))
            continue
        names = [{"value": ae, "type": "registered-name"}]
        if step.station_name:
            names.append({"value": step.station_name, "type": "user-friendly-name"})
        device: dict[str, Any] = {
            "resourceType": "Device",
            "meta": {"profile": [PROFILE_STATION]},
            "identifier": [{"system": ctx.systems.station_ae, "value": ae}],
            "name": names,
        }
        if step.station_generated:
            add_tag(device, generated_tag("scheduled-station", "default station (configuration)"))
        url = seen[ae] = ctx.full_url()
        out.append((url, create_entry(url, device, device["identifier"][0])))
    return out


def key_entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return put_entry(url, resource, resource["identifier"][0])
