"""PID → Patient and PV1/PV2 → Encounter, in the guide's imaging-patient / imaging-visit shape.

Shared by the order messages (ORM/OMG/OMI) and the ADT messages. The patient's primary
identifier (the one conditional references and the worklist's Patient ID use) is the first PID-3
repetition typed MR, else the first PID-3 repetition (docs/resource-model.md).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.model import MR, PROFILE_PATIENT, PROFILE_VISIT, VN, has_type
from fhirmwl.hl7v2.errors import REQUIRED_FIELD_MISSING, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Segment
from fhirmwl.mapping.v2_to_fhir.context import MappingContext
from fhirmwl.mapping.v2_to_fhir.datatypes import (
    cwe,
    cx,
    date_to_fhir,
    display_name,
    ts_to_fhir,
    xcn,
    xpn,
)

_GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "other"}
_PATIENT_CLASS = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("AMB", "ambulatory"),
}
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def patient_identifiers(pid: Segment, ctx: MappingContext) -> list[dict[str, Any]]:
    """PID-3 repetitions (then PID-2 and PID-4, as FHIR-Converter does) → Identifier list."""
    idents: list[dict[str, Any]] = []
    for n in (3, 2, 4):
        for rep in range(1, len(pid.repetitions(n)) + 1):
            ident = cx(pid, n, rep, ctx, ctx.systems.patient)
            if ident and ident not in idents:
                idents.append(ident)
    return idents


def primary_identifier(pid: Segment, ctx: MappingContext, seq: int = 1) -> dict[str, Any]:
    """The identifier that keys the Patient; raises AE 101 at PID-3 when there is none."""
    idents = [
        cx(pid, 3, rep, ctx, ctx.systems.patient) for rep in range(1, len(pid.repetitions(3)) + 1)
    ]
    found = [i for i in idents if i]
    if not found:
        raise V2Error(REQUIRED_FIELD_MISSING, "PID-3 patient identifier missing", _loc(seq, 3))
    return next((i for i in found if has_type(i, MR)), found[0])


def _loc(seq: int, field: int) -> ErrorLocation:
    return ErrorLocation("PID", seq, field)


def map_patient(pid: Segment, ctx: MappingContext, seq: int = 1) -> dict[str, Any]:
    """PID → Patient (imaging-patient profile)."""
    primary = primary_identifier(pid, ctx, seq)
    others = [i for i in patient_identifiers(pid, ctx) if i != primary]
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": [PROFILE_PATIENT]},
        "identifier": [primary, *others],
    }
    names = [xpn(pid, 5, rep) for rep in range(1, len(pid.repetitions(5)) + 1)]
    if any(names):
        patient["name"] = [n for n in names if n]
    birth = date_to_fhir(pid.comp(7), _loc(seq, 7))
    if birth:
        patient["birthDate"] = birth
    gender = _GENDER.get(pid.comp(8).upper())
    if gender:
        patient["gender"] = gender
    address = _address(pid)
    if address:
        patient["address"] = [address]
    return patient


def _address(pid: Segment) -> dict[str, Any] | None:
    comps = [pid.comp(11, i) for i in range(1, 7)]
    if not any(comps):
        return None
    addr: dict[str, Any] = {}
    lines = [pid.comp(11, 1, sub=1), comps[1]]
    if any(lines):
        addr["line"] = [x for x in lines if x]
    for key, value in zip(("city", "state", "postalCode", "country"), comps[2:6], strict=True):
        if value:
            addr[key] = value
    return addr


def map_encounter(
    pv1: Segment,
    ctx: MappingContext,
    patient_ref: dict[str, str],
    pv2: Segment | None = None,
) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]]]:
    """PV1 (and PV2) → Encounter (imaging-visit) plus the Practitioners it references.

    Returns (None, []) when PV1 carries no visit number (PV1-19), since such an Encounter could
    not be matched again by a later message.
    """
    visit = cx(pv1, 19, 1, ctx, ctx.systems.visit)
    if visit is None:
        return None, []
    visit["type"] = {"coding": [{"system": VN[0], "code": VN[1]}]}
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "meta": {"profile": [PROFILE_VISIT]},
        "identifier": [visit],
        "status": "in-progress",
        "subject": patient_ref,
    }
    cls = _PATIENT_CLASS.get(pv1.comp(2).upper())
    if cls:
        enc["class"] = [{"coding": [{"system": V3_ACT_CODE, "code": cls[0], "display": cls[1]}]}]
    practitioners: list[tuple[str, dict[str, Any]]] = []
    participants = []
    for field_no, code in ((7, "ATND"), (8, "REF"), (17, "ADM")):
        prac = xcn(pv1, field_no, ctx)
        if prac is None:
            continue
        if "identifier" in prac:
            url = ctx.full_url()
            practitioners.append((url, prac))
            actor = {"reference": url}
        else:
            actor = {"display": display_name(prac.get("name", [None])[0])}
        participants.append(
            {"type": [{"coding": [{"system": V3_PARTICIPATION, "code": code}]}], "actor": actor}
        )
    if participants:
        enc["participant"] = participants
    start = ts_to_fhir(pv1.comp(44), ctx.timezone, ErrorLocation("PV1", 1, 44))
    if start:
        enc["actualPeriod"] = {"start": start}
    service = cwe(pv1, 10)
    if service:
        enc["serviceType"] = [{"concept": service}]
    _location_and_reason(enc, pv1, pv2)
    return enc, practitioners


def _location_and_reason(enc: dict[str, Any], pv1: Segment, pv2: Segment | None) -> None:
    """PV1-3 (PL: point of care^room^bed^…^facility) → location display; PV2-3 → reason."""
    parts = [pv1.comp(3, i, sub=1) for i in (1, 2, 3, 4)]
    place = " ".join(p for p in parts if p)
    if place:
        enc["location"] = [{"location": {"display": place}}]
    reason = cwe(pv2, 3) if pv2 is not None else None
    if reason:
        enc["reason"] = [{"value": [{"concept": reason}]}]
