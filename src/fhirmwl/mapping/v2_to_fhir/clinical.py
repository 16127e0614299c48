"""HL7 v2 clinical content → FHIR resources of the patient (the worklist's Patient Medical data).

Orders often carry what the technologist must know before scanning: allergies (AL1), body
weight, height and pregnancy status (OBX with LOINC codes), pregnancy as ambulatory status
(PV1-15 ``B6``), relevant clinical information (OBR-13) and the danger code (OBR-12). They
become AllergyIntolerance, Observation and Flag resources of the patient (v2-to-fhir segment
maps: AL1 → AllergyIntolerance, OBX → Observation), which the worklist item reads
(``mapping/fhir_to_dicom/clinical.py``). Each resource is keyed by an identifier derived from the
patient and the coded content, so a repeated message does not duplicate it; observations are
conditional updates (the latest message wins), allergies and flags conditional creates.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.model import (
    BODY_HEIGHT,
    BODY_WEIGHT,
    LOINC,
    PATIENT_STATE_CATEGORY,
    PREGNANCY_STATUS,
    SNOMED,
    UCUM,
)
from fhirmwl.hl7v2.message import Segment, V2Message
from fhirmwl.mapping.v2_to_fhir.bundle import create_entry, put_entry
from fhirmwl.mapping.v2_to_fhir.context import MappingContext
from fhirmwl.mapping.v2_to_fhir.datatypes import cwe, ts_to_fhir

CLINICAL_ID_SYSTEM = "urn:fhirmwl:id:v2-clinical"
OBX_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "registered"}
ALLERGY_CATEGORY = {"DA": "medication", "FA": "food", "EA": "environment", "MA": "medication"}
ALLERGY_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low"}
PREGNANT = {"system": SNOMED, "code": "77386006", "display": "Pregnant"}
Entry = dict[str, Any]


def clinical_entries(
    msg: V2Message, patient_ref: dict[str, str], patient_key: tuple[str, str], ctx: MappingContext
) -> list[Entry]:
    """Bundle entries for the clinical segments of ``msg`` (none when it carries none)."""

    def key(kind: str, content: str) -> dict[str, str]:
        seed = f"{patient_key[0]}|{patient_key[1]}|{kind}|{content}"
        return {"system": CLINICAL_ID_SYSTEM, "value": ctx.make_id(kind, seed)}

    entries: list[Entry | None] = [_allergy(a, patient_ref, key, ctx) for a in msg.all("AL1")]
    entries += [_observation(obx, patient_ref, key, ctx) for obx in msg.all("OBX")]
    pv1 = msg.first("PV1")
    if pv1 is not None and "B6" in [pv1.comp(15, 1, r) for r in range(1, 6)]:
        obs = _base_observation(PREGNANCY_STATUS[0], "Pregnancy status", patient_ref)
        obs["valueCodeableConcept"] = {"coding": [PREGNANT], "text": "PV1-15 B6"}
        ident = key("observation", PREGNANCY_STATUS[0])
        entries.append(put_entry(ctx.full_url(), {**obs, "identifier": [ident]}, ident))
    for obr in msg.all("OBR"):
        entries += _flags(obr, patient_ref, key, ctx)
    return [e for e in entries if e is not None]


def _allergy(al1: Segment, patient_ref: dict[str, str], key: Any, ctx: MappingContext) -> Entry:
    code = cwe(al1, 3) or {"text": "unknown allergen"}
    ident = key("allergy", _content(code))
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "identifier": [ident],
        "clinicalStatus": _concept("allergyintolerance-clinical", "active"),
        "code": code,
        "patient": patient_ref,
    }
    category = ALLERGY_CATEGORY.get(al1.comp(2).upper())
    if category:
        resource["category"] = [category]
    criticality = ALLERGY_CRITICALITY.get(al1.comp(4).upper())
    if criticality:
        resource["criticality"] = criticality
    reactions = [al1.comp(5, 1, r) for r in range(1, 6) if al1.comp(5, 1, r)]
    if reactions:
        resource["reaction"] = [{"manifestation": [{"concept": {"text": t}} for t in reactions]}]
    return create_entry(ctx.full_url(), resource, ident)


def _concept(code_system: str, code: str) -> dict[str, Any]:
    system = f"http://terminology.hl7.org/CodeSystem/{code_system}"
    return {"coding": [{"system": system, "code": code}]}


def _content(concept: dict[str, Any]) -> str:
    codings = concept.get("coding") or []
    if codings:
        return f"{codings[0].get('system', '')}|{codings[0].get('code', '')}"
    return str(concept.get("text", "")).upper()


def _base_observation(loinc: str, display: str, patient_ref: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
        "subject": patient_ref,
    }


def _observation(
    obx: Segment, patient_ref: dict[str, str], key: Any, ctx: MappingContext
) -> Entry | None:
    """OBX with a body weight, body height or pregnancy status LOINC code (others ignored)."""
    code = cwe(obx, 3) or {}
    loinc = next(
        (c["code"] for c in code.get("coding") or [] if c.get("system") == LOINC), obx.comp(3)
    )
    if loinc not in (*BODY_WEIGHT, *BODY_HEIGHT, *PREGNANCY_STATUS):
        return None
    obs = _base_observation(loinc, obx.comp(3, 2), patient_ref)
    obs["status"] = OBX_STATUS.get(obx.comp(11).upper(), "final")
    if loinc in PREGNANCY_STATUS:
        value = cwe(obx, 5)
        if value is None:
            return None
        obs["valueCodeableConcept"] = value
    else:
        try:
            number = float(obx.comp(5))
        except ValueError:
            return None
        unit = obx.comp(6) or obx.comp(6, 2)
        obs["valueQuantity"] = {"value": number, "unit": unit, "system": UCUM, "code": unit}
    when = ts_to_fhir(obx.comp(14), ctx.timezone) if obx.comp(14) else None
    if when:
        obs["effectiveDateTime"] = when
    group = "height" if loinc in BODY_HEIGHT else "weight" if loinc in BODY_WEIGHT else "pregnancy"
    ident = key("observation", group)
    obs["identifier"] = [ident]
    return put_entry(ctx.full_url(), obs, ident)


def _flags(obr: Segment, patient_ref: dict[str, str], key: Any, ctx: MappingContext) -> list[Entry]:
    """OBR-13 relevant clinical information → Medical Alerts Flag; OBR-12 danger code →
    Patient State Flag (IHE RAD TF-2 Appendix B)."""
    out = []
    for text, category in (
        (obr.comp(13), None),
        (obr.comp(12, 2) or obr.comp(12), PATIENT_STATE_CATEGORY),
    ):
        if not text:
            continue
        ident = key("flag", f"{category}|{text.upper()}")
        flag: dict[str, Any] = {
            "resourceType": "Flag",
            "identifier": [ident],
            "status": "active",
            "code": {"text": text[:64]},
            "subject": patient_ref,
        }
        if category:
            flag["category"] = [{"coding": [{"system": category[0], "code": category[1]}]}]
        out.append(create_entry(ctx.full_url(), flag, ident))
    return out
