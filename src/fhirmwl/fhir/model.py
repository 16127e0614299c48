"""Systems, codes and profile URLs of the resource model (docs/resource-model.md).

They live in one module so that the v2 intake, the order operations, the worklist index and the
validator can never disagree on how, say, an accession number is recognised.
"""

from __future__ import annotations

from typing import Any

CANON = "http://hl7.org/fhir/uv/imaging-service-request-ig"


def profile_url(profile_id: str) -> str:
    return f"{CANON}/StructureDefinition/{profile_id}"


PROFILE_ISR = profile_url("imaging-service-request")
PROFILE_RP = profile_url("imaging-requested-procedure")
PROFILE_SPS = profile_url("imaging-scheduled-procedure-step")
PROFILE_PATIENT = profile_url("imaging-patient")
PROFILE_VISIT = profile_url("imaging-visit")
PROFILE_STATION = profile_url("scheduled-station")
PROFILE_STUDY = profile_url("requested-procedure-imaging-study")

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ID_TYPE_SYSTEM = f"{CANON}/CodeSystem/imaging-identifier-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DCM_MODALITY_CODE = "121139"
DEVICE_NAMETYPE = "http://hl7.org/fhir/device-nametype"
DICOM_UID_SYSTEM = "urn:dicom:uid"
GENERATED_TAG_SYSTEM = "urn:fhirmwl:generated"
# Identifier.system of a station Device's AE title (the v2 mapping's IdentifierSystems.station_ae)
STATION_AE_SYSTEM = "urn:fhirmwl:id:ae-title"

# Task extension keeping DICOM attributes of an imported worklist item that have no FHIR home
# (mapping/fhir_to_dicom/residual.py).
DICOM_ATTRIBUTES_EXT = "urn:fhirmwl:extension:dicom-attributes"

# Clinical content of the worklist item (mapping/fhir_to_dicom/clinical.py, docs/resource-model.md)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
# Flag.category codes routing a Flag to Patient State or Special Needs instead of Medical Alerts
# (the FHIR flag-category system has no such codes; ours, documented in docs/resource-model.md).
WORKLIST_FLAG_CATEGORY = "urn:fhirmwl:CodeSystem:worklist-flag"
PATIENT_STATE_CATEGORY = (WORKLIST_FLAG_CATEGORY, "patient-state")
SPECIAL_NEEDS_CATEGORY = (WORKLIST_FLAG_CATEGORY, "special-needs")
# Order details the guide leaves without a home (mapping/fhir_to_dicom/order_details.py): the code
# of a Task.input or ServiceRequest.orderDetail.parameter carrying contrast, pre-medication or
# patient transport; confidentiality is a meta.security label of HL7's confidentiality codes.
WORKLIST_DETAIL = "urn:fhirmwl:CodeSystem:worklist-detail"
CONTRAST_AGENT = (WORKLIST_DETAIL, "contrast-agent")
PRE_MEDICATION = (WORKLIST_DETAIL, "pre-medication")
PATIENT_TRANSPORT = (WORKLIST_DETAIL, "patient-transport")
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V2_TRANSPORT_MODE = "http://terminology.hl7.org/CodeSystem/v2-0124"
V2_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v2-0177"  # ORC-28 (VIP, EMP, HIV …)
BODY_WEIGHT = ("29463-7", "3141-9")
BODY_HEIGHT = ("8302-2", "3137-7")
PREGNANCY_STATUS = ("82810-3", "11449-6")

ACSN = (V2_0203, "ACSN")
PLAC = (V2_0203, "PLAC")
FILL = (V2_0203, "FILL")
MR = (V2_0203, "MR")
VN = (V2_0203, "VN")
RPID = (ID_TYPE_SYSTEM, "RPID")
SPSID = (ID_TYPE_SYSTEM, "SPSID")


# The guide's own example types the Requested Procedure ID by text only (``type.text =
# "Requested Procedure ID"``, no coding, I-7): an uncoded type with this text counts as the code.
_TYPE_TEXTS = {RPID: "requested procedure id", SPSID: "scheduled procedure step id"}


def has_type(identifier: dict[str, Any], code: tuple[str, str]) -> bool:
    """True when ``identifier.type`` carries the (system, code) pair (or, uncoded, its text)."""
    id_type = identifier.get("type") or {}
    for coding in id_type.get("coding") or []:
        if coding.get("system") == code[0] and coding.get("code") == code[1]:
            return True
    text = id_type.get("text")
    if not id_type.get("coding") and isinstance(text, str) and code in _TYPE_TEXTS:
        return " ".join(text.lower().split()) == _TYPE_TEXTS[code]
    return False


def identifier_of_type(resource: dict[str, Any], code: tuple[str, str]) -> dict[str, Any] | None:
    for ident in resource.get("identifier") or []:
        if has_type(ident, code):
            return ident
    return None


def typed_identifier(
    code: tuple[str, str], value: str, system: str | None = None, display: str | None = None
) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": code[0], "code": code[1]}
    if display:
        coding["display"] = display
    ident: dict[str, Any] = {"type": {"coding": [coding]}}
    if system:
        ident["system"] = system
    ident["value"] = value
    return ident


def modality_input(modality: str) -> dict[str, Any]:
    """The Task ``input[modality]`` element (I-9): type DCM#121139, value the DICOM modality."""
    return {
        "type": {"coding": [{"system": DCM, "code": DCM_MODALITY_CODE, "display": "Modality"}]},
        "valueCodeableConcept": {"coding": [{"system": DCM, "code": modality}]},
    }


def generated_tag(code: str, display: str) -> dict[str, str]:
    return {"system": GENERATED_TAG_SYSTEM, "code": code, "display": display}
