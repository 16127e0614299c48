"""ConceptMap rows for the worklist item's clinical content (issue 14): FHIR → DICOM rows of the
patient's AllergyIntolerance, Flag and Observation resources, and the HL7 v2 segments (AL1,
OBX, PV1-15, OBR-12/13) that create them. Kept apart from ``defs_maps``/``defs_v2map`` so each
module stays small; both ConceptMaps append these groups."""

from __future__ import annotations

from fhirmwl.fhir.model import PROFILE_SPS

BASE = "http://hl7.org/fhir/StructureDefinition/"
FLAG_CATEGORY = "category urn:fhirmwl:CodeSystem:worklist-flag#"
KEPT = "imported items: kept on the Task (extension urn:fhirmwl:extension:dicom-attributes)"

# profile → rows of (source path, DICOM keyword, tag, VR, in SPS item, comment)
MWL_CLINICAL_ROWS: dict[str, list[tuple[str, str, str, str, bool, str]]] = {
    f"{BASE}AllergyIntolerance": [
        (
            "AllergyIntolerance.code",
            "Allergies",
            "00102110",
            "LO",
            False,
            "patient's allergies not inactive/resolved, not refuted; text, else display, else "
            "code; one value each (VM 1-n)",
        ),
    ],
    f"{BASE}Flag": [
        ("Flag.code", "MedicalAlerts", "00102000", "LO", False, "active Flags, other categories"),
        ("Flag.code", "PatientState", "00380500", "LO", False, FLAG_CATEGORY + "patient-state"),
        ("Flag.code", "SpecialNeeds", "00380050", "LO", False, FLAG_CATEGORY + "special-needs"),
    ],
    f"{BASE}Observation": [
        (
            "Observation.valueQuantity",
            "PatientWeight",
            "00101030",
            "DS",
            False,
            "LOINC 29463-7 or 3141-9, latest final, converted to kg (kg, g, [lb_av])",
        ),
        (
            "Observation.valueQuantity",
            "PatientSize",
            "00101020",
            "DS",
            False,
            "LOINC 8302-2 or 3137-7, latest final, converted to m (m, cm, mm, [in_i])",
        ),
        (
            "Observation.valueCodeableConcept",
            "PregnancyStatus",
            "001021C0",
            "US",
            False,
            "LOINC 82810-3 or 11449-6: LA26683-5 / SCT 60001007 → 1, SCT 102874004 → 2, "
            "LA15173-0 / SCT 77386006 → 3, LA4489-6 / SCT 261665006 → 4",
        ),
    ],
    PROFILE_SPS: [
        ("Task.extension", "RequestedContrastAgent", "00321070", "LO", True, KEPT),
        ("Task.extension", "PreMedication", "00400012", "LO", True, KEPT),
        ("Task.note.text", "CommentsOnTheScheduledProcedureStep", "00400400", "LT", True, ""),
    ],
}

# target resource → rows of (v2 field, FHIR element, comment)
V2_CLINICAL_ROWS: dict[str, list[tuple[str, str, str]]] = {
    f"{BASE}AllergyIntolerance": [
        (
            "AL1-2",
            "AllergyIntolerance.category",
            "DA, MA → medication; FA → food; EA → environment",
        ),
        ("AL1-3", "AllergyIntolerance.code", "CWE; the worklist shows its text"),
        ("AL1-4", "AllergyIntolerance.criticality", "SV → high; MO, MI → low"),
        ("AL1-5", "AllergyIntolerance.reaction.manifestation", "text"),
    ],
    f"{BASE}Observation": [
        ("OBX-3", "Observation.code", "LOINC body weight, body height, pregnancy status only"),
        ("OBX-5", "Observation.value[x]", "NM → valueQuantity; CWE → valueCodeableConcept"),
        ("OBX-6", "Observation.valueQuantity.code", "UCUM unit"),
        ("OBX-11", "Observation.status", "F → final, C → corrected, P → preliminary"),
        ("OBX-14", "Observation.effectiveDateTime", ""),
        ("PV1-15", "Observation.valueCodeableConcept", "B6 → pregnancy status SCT 77386006"),
    ],
    f"{BASE}Flag": [
        ("OBR-12", "Flag.code", "danger code → Patient State (" + FLAG_CATEGORY + "patient-state)"),
        ("OBR-13", "Flag.code", "relevant clinical information → Medical Alerts"),
    ],
}
