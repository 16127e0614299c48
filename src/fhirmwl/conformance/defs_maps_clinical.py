"""ConceptMap rows for the worklist item's clinical content (issue 14): FHIR → DICOM rows of the
patient's AllergyIntolerance, Flag and Observation resources, and the HL7 v2 segments (AL1,
OBX, PV1-15, OBR-12/13) that create them; and the order details of
``mapping/fhir_to_dicom/order_details.py`` (contrast, pre-medication, transport from OBR-30/43,
confidentiality from ORC-28). Kept apart from ``defs_maps``/``defs_v2map`` so each
module stays small; both ConceptMaps append these groups."""

from __future__ import annotations

from fhirmwl.fhir.model import PROFILE_ISR, PROFILE_PATIENT, PROFILE_RP, PROFILE_SPS

BASE = "http://hl7.org/fhir/StructureDefinition/"
FLAG_CATEGORY = "category urn:fhirmwl:CodeSystem:worklist-flag#"
DETAIL = "code urn:fhirmwl:CodeSystem:worklist-detail#"
VALUE = "valueString, or the CodeableConcept's text, else a display, else a code"

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
        (
            "Task.input[contrast-agent].value[x]",
            "RequestedContrastAgent",
            "00321070",
            "LO",
            True,
            f"type {DETAIL}contrast-agent, else the RP's orderDetail.parameter with that code; "
            + VALUE,
        ),
        (
            "Task.input[pre-medication].value[x]",
            "PreMedication",
            "00400012",
            "LO",
            True,
            f"type {DETAIL}pre-medication, else the RP's orderDetail.parameter with that code; "
            + VALUE,
        ),
        ("Task.note.text", "CommentsOnTheScheduledProcedureStep", "00400400", "LT", True, ""),
    ],
    PROFILE_RP: [
        (
            "ServiceRequest.orderDetail.parameter[patient-transport].value[x]",
            "PatientTransportArrangements",
            "00401004",
            "LO",
            False,
            f"{DETAIL}patient-transport; else the ISR's; " + VALUE,
        ),
    ],
    PROFILE_PATIENT: [
        (
            "Patient.meta.security",
            "ConfidentialityConstraintOnPatientDataDescription",
            "00403001",
            "LO",
            False,
            "most restrictive v3-Confidentiality label of the Patient, ISR and RP: its display, "
            "else the code's display; else the first v2-0177 label (VIP …)",
        ),
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
    PROFILE_RP: [
        (
            "OBR-30",
            "ServiceRequest.orderDetail.parameter.valueCodeableConcept.coding",
            "transportation mode (table 0124: CART, PORT, WALK, WHLC), "
            + DETAIL
            + "patient-transport",
        ),
        (
            "OBR-43",
            "ServiceRequest.orderDetail.parameter.valueCodeableConcept.text",
            "planned patient transport comment (CWE.2, else CWE.1), same parameter as OBR-30",
        ),
    ],
    PROFILE_ISR: [
        (
            "ORC-28",
            "ServiceRequest.meta.security",
            "table 0177: V, R → v3-Confidentiality V, R; U → none; others (VIP, EMP …) as v2-0177",
        ),
    ],
    f"{BASE}Flag": [
        ("OBR-12", "Flag.code", "danger code → Patient State (" + FLAG_CATEGORY + "patient-state)"),
        ("OBR-13", "Flag.code", "relevant clinical information → Medical Alerts"),
    ],
}
