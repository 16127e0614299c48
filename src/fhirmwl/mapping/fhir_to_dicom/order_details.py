"""Contrast, pre-medication, patient transport and confidentiality: four worklist attributes for
which the guide only proposes a FHIR home (spec/ig.md §3.3), given one here and read both ways.

=====================================================  =========================================
DICOM attribute                                        FHIR R5 source (the first with a value)
=====================================================  =========================================
>Requested Contrast Agent (0032,1070), LO              Task.input of type ``worklist-detail#
                                                       contrast-agent``; else the Requested
                                                       Procedure's ``orderDetail.parameter``
                                                       with that code
>Pre-Medication (0040,0012), LO                        the same with ``#pre-medication``
Patient Transport Arrangements (0040,1004), LO         ``orderDetail.parameter`` ``#patient-
                                                       transport`` of the Requested Procedure,
                                                       else of the Imaging Service Request
Confidentiality Constraint on Patient Data             the most restrictive ``v3-Confidentiality``
Description (0040,3001), LO                            label in ``meta.security`` of the Patient,
                                                       the ISR or the RP: its display, else the
                                                       code's standard display; else the first
                                                       ``v2-0177`` label (``VIP`` …, from ORC-28)
=====================================================  =========================================

Why these homes: R5 ``ServiceRequest.orderDetail`` is the element for "additional details and
instructions about how the services are to be delivered" (v2-to-FHIR puts OBR-46/47 there), a
step-level ``Task.input`` lets one step of a procedure differ (the guide's proposal for the SPS
attributes), and ``meta.security`` is where FHIR and v2-to-FHIR (ORC-28) put confidentiality.
A value is ``valueString``, or a CodeableConcept's ``text``, else its first coding's
``display``, else its ``code`` (HL7 v2 OBR-30 ``WALK`` arrives as a code and the modality shows
``WALK``, as IHE's mapping of OBR-30 does). Values are cut to 64 characters (LO).

The builders at the end make those elements for the import (``inverse``) and the HL7 v2 intake.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.model import (
    CONTRAST_AGENT,
    PATIENT_TRANSPORT,
    PRE_MEDICATION,
    V2_CONFIDENTIALITY,
    V3_CONFIDENTIALITY,
)
from fhirmwl.mapping.fhir_to_dicom.context import WorklistGraph

Resource = dict[str, Any]
Code = tuple[str, str]
LO = 64
# HL7 v3 Confidentiality, least to most restrictive, with the code system's displays.
CONFIDENTIALITY = {
    "U": "unrestricted",
    "L": "low",
    "M": "moderate",
    "N": "normal",
    "R": "restricted",
    "V": "very restricted",
}
_RANK = {code: n for n, code in enumerate(CONFIDENTIALITY)}


def _has(concept: Any, code: Code) -> bool:
    codings = (concept or {}).get("coding") or []
    return any((c.get("system"), c.get("code")) == code for c in codings)


def concept_text(concept: Any) -> str | None:
    """A CodeableConcept as one line of text: its text, else a display, else a code."""
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return str(concept["text"])
    for key in ("display", "code"):
        for coding in concept.get("coding") or []:
            if coding.get(key):
                return str(coding[key])
    return None


def _value(element: Resource) -> str | None:
    value = element.get("valueString") or concept_text(element.get("valueCodeableConcept"))
    return str(value)[:LO] if value else None


def _from_inputs(task: Resource | None, code: Code) -> str | None:
    for item in (task or {}).get("input") or []:
        if _has(item.get("type"), code) and _value(item):
            return _value(item)
    return None


def _from_order(request: Resource | None, code: Code) -> str | None:
    for detail in (request or {}).get("orderDetail") or []:
        for parameter in detail.get("parameter") or []:
            if _has(parameter.get("code"), code) and _value(parameter):
                return _value(parameter)
    return None


def step_details(graph: WorklistGraph) -> dict[str, str]:
    """SPS-level attributes (type 2C: present only when there is something to apply)."""
    out = {}
    for keyword, code in (
        ("RequestedContrastAgent", CONTRAST_AGENT),
        ("PreMedication", PRE_MEDICATION),
    ):
        value = _from_inputs(graph.task, code) or _from_order(graph.requested_procedure, code)
        if value:
            out[keyword] = value
    return out


def order_details(graph: WorklistGraph) -> dict[str, str]:
    """Top-level attributes (type 2: the caller sends them empty when absent)."""
    out = {}
    transport = _from_order(graph.requested_procedure, PATIENT_TRANSPORT) or _from_order(
        graph.service_request, PATIENT_TRANSPORT
    )
    if transport:
        out["PatientTransportArrangements"] = transport
    label = _confidentiality([graph.patient, graph.service_request, graph.requested_procedure])
    if label:
        out["ConfidentialityConstraintOnPatientDataDescription"] = label
    return out


def _confidentiality(resources: list[Resource | None]) -> str | None:
    security = [s for r in resources for s in ((r or {}).get("meta") or {}).get("security") or []]
    levels = [
        s for s in security if s.get("system") == V3_CONFIDENTIALITY and s.get("code") in _RANK
    ]
    if levels:
        top = max(levels, key=lambda s: _RANK[s["code"]])
        return str(top.get("display") or CONFIDENTIALITY[top["code"]])[:LO]
    # HL7 v2 table 0177 categories (VIP, EMP, PSY …) that name no level: the first one
    other = next((s for s in security if s.get("system") == V2_CONFIDENTIALITY), None)
    return str(other.get("display") or other.get("code"))[:LO] if other else None


# ---- builders: the FHIR elements for a value (import, HL7 v2) ----


def _code(code: Code) -> Resource:
    return {"coding": [{"system": code[0], "code": code[1]}]}


def detail_input(code: Code, text: str) -> Resource:
    """A Task.input carrying a step-level detail."""
    return {"type": _code(code), "valueString": text}


def detail_parameter(code: Code, value: str | Resource) -> Resource:
    """One ``orderDetail`` carrying a detail: ``value`` a string or a CodeableConcept."""
    key = "valueString" if isinstance(value, str) else "valueCodeableConcept"
    return {"parameter": [{"code": _code(code), key: value}]}


def confidentiality_label(code: str, display: str | None = None) -> Resource | None:
    """A ``meta.security`` Coding for a v3 Confidentiality code or one of its displays
    (case-insensitive; ``display`` is kept as given, so the worklist shows it unchanged)."""
    wanted = code.strip().upper()
    found = next(
        (c for c, d in CONFIDENTIALITY.items() if wanted in (c, d.upper())),
        None,
    )
    if found is None:
        return None
    label = {"system": V3_CONFIDENTIALITY, "code": found}
    if display:
        label["display"] = display
    return label
