"""Patient-level clinical content of a worklist item, from the patient's clinical resources.

What the technologist must see before scanning (spec/ig.md §3.3 proposals, docs/resource-model.md
"Clinical content"): Allergies (0010,2110) from AllergyIntolerance, Medical Alerts (0010,2000)
and Patient State (0038,0500) / Special Needs (0038,0050) from Flag, Pregnancy Status
(0010,21C0), Patient's Weight (0010,1030) and Size (0010,1020) from Observation (LOINC codes;
the latest one counts). Pure: the caller passes the resources that point at the patient.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from fhirmwl.fhir.model import (
    BODY_HEIGHT,
    BODY_WEIGHT,
    LOINC,
    PATIENT_STATE_CATEGORY,
    PREGNANCY_STATUS,
    SNOMED,
    SPECIAL_NEEDS_CATEGORY,
)
from fhirmwl.mapping.fhir_to_dicom.jsonds import JsonDataset

# Observation answer → Pregnancy Status (0010,21C0): 1 not pregnant, 2 possibly, 3 definitely,
# 4 unknown (LOINC answer list LL4129-4 and SNOMED CT findings).
PREGNANCY_VALUES = {
    (LOINC, "LA26683-5"): 1,
    (LOINC, "LA15173-0"): 3,
    (LOINC, "LA4489-6"): 4,
    (SNOMED, "60001007"): 1,
    (SNOMED, "102874004"): 2,
    (SNOMED, "77386006"): 3,
    (SNOMED, "261665006"): 4,
}
TO_KG = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237}
TO_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "[in_i]": 0.0254}
_FINAL = {"final", "amended", "corrected", "preliminary", "registered"}
_GONE = {"entered-in-error", "refuted"}


def _codes(concept: dict[str, Any] | None) -> list[tuple[str | None, str | None]]:
    return [(c.get("system"), c.get("code")) for c in (concept or {}).get("coding") or []]


def concept_text(concept: dict[str, Any] | None) -> str:
    concept = concept or {}
    codings = concept.get("coding") or []
    text = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), "")
    return str(text or next((c.get("code") for c in codings if c.get("code")), ""))[:64]


def _status_code(concept: dict[str, Any] | None) -> str:
    return next((str(code) for _, code in _codes(concept) if code), "")


def allergies(resources: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in resources:
        if r.get("resourceType") != "AllergyIntolerance":
            continue
        if _status_code(r.get("clinicalStatus")) in ("inactive", "resolved"):
            continue
        if _status_code(r.get("verificationStatus")) in _GONE:
            continue
        text = concept_text(r.get("code"))
        if text:
            out.append(text)
    return list(dict.fromkeys(out))


def flags(resources: list[dict[str, Any]], category: tuple[str, str] | None) -> list[str]:
    """Texts of the active Flags in ``category`` (``None``: the Medical Alerts, i.e. every
    active Flag not in the Patient State or Special Needs category)."""
    routed = {PATIENT_STATE_CATEGORY, SPECIAL_NEEDS_CATEGORY}
    out = []
    for r in resources:
        if r.get("resourceType") != "Flag" or r.get("status") != "active":
            continue
        cats = {c for concept in r.get("category") or [] for c in _codes(concept)}
        if (category in cats) if category else not (cats & routed):
            text = concept_text(r.get("code"))
            if text:
                out.append(text)
    return list(dict.fromkeys(out))


def _latest(resources: list[dict[str, Any]], codes: tuple[str, ...]) -> dict[str, Any] | None:
    found = [
        r
        for r in resources
        if r.get("resourceType") == "Observation"
        and r.get("status") in _FINAL
        and any(s == LOINC and c in codes for s, c in _codes(r.get("code")))
    ]
    return max(found, key=_when, default=None)


def _when(obs: dict[str, Any]) -> str:
    period = obs.get("effectivePeriod") or {}
    return str(obs.get("effectiveDateTime") or period.get("end") or obs.get("issued") or "")


def _quantity(obs: dict[str, Any] | None, factors: dict[str, float]) -> str | None:
    q = (obs or {}).get("valueQuantity") or {}
    unit = q.get("code") or q.get("unit")
    if q.get("value") is None or unit not in factors:
        return None
    value = float(q["value"]) * factors[str(unit)]
    return f"{value:.6g}"[:16]  # DS: at most 16 characters


def pregnancy_status(resources: list[dict[str, Any]]) -> int | None:
    obs = _latest(resources, PREGNANCY_STATUS)
    for key in _codes((obs or {}).get("valueCodeableConcept")):
        if key in PREGNANCY_VALUES:
            return PREGNANCY_VALUES[key]  # type: ignore[index]
    return None


def add_clinical(ds: Dataset | JsonDataset, resources: list[dict[str, Any]]) -> None:
    """Set the patient-level clinical attributes on ``ds`` (type 2: they are already present)."""
    if not resources:
        return
    for keyword, values in (
        ("Allergies", allergies(resources)),
        ("MedicalAlerts", flags(resources, None)),
    ):
        if values:
            setattr(ds, keyword, values if len(values) > 1 else values[0])
    for keyword, category in (
        ("PatientState", PATIENT_STATE_CATEGORY),
        ("SpecialNeeds", SPECIAL_NEEDS_CATEGORY),
    ):
        values = flags(resources, category)
        if values:
            setattr(ds, keyword, values[0])
    status = pregnancy_status(resources)
    if status is not None:
        ds.PregnancyStatus = status
    weight = _quantity(_latest(resources, BODY_WEIGHT), TO_KG)
    if weight is not None:
        ds.PatientWeight = weight
    size = _quantity(_latest(resources, BODY_HEIGHT), TO_M)
    if size is not None:
        ds.PatientSize = size
