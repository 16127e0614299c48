"""The HL7 v2 → FHIR map of the order intake as an R5 ConceptMap.

Rows follow the HL7 V2-to-FHIR IG where it has a target (spec v2-to-fhir.md §2) and our
imaging completion where it has none (§6: OBR-18/19/20, IPC, ZDS). The intake's mapping code is
tested against ``registry.conceptmap_rows("v2-to-fhir-order")``.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import meta
from fhirmwl.conformance.defs_maps_clinical import V2_CLINICAL_ROWS
from fhirmwl.fhir.model import (
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
)

V2_SOURCE = "http://terminology.hl7.org/CodeSystem/v2-tables"

# target profile → rows of (v2 field, FHIR element, comment)
V2_ROWS: dict[str, list[tuple[str, str, str]]] = {
    PROFILE_PATIENT: [
        ("PID-3", "Patient.identifier", "CX.5 → type (e.g. MR); CX.4 → system"),
        ("PID-5", "Patient.name", "XPN → HumanName"),
        ("PID-7", "Patient.birthDate", "first 8 characters"),
        ("PID-8", "Patient.gender", "AdministrativeSex map; A, N → other"),
    ],
    PROFILE_VISIT: [
        ("PV1-3", "Encounter.location.location", "Location from PL"),
        ("PV1-8", "Encounter.participant[referrer].actor", "participant type REF"),
        ("PV1-19", "Encounter.identifier[visitNumber]", "type v2-0203#VN"),
        ("PV2-3", "Encounter.reason.value.concept", ""),
    ],
    PROFILE_ISR: [
        ("ORC-2", "ServiceRequest.identifier[placerOrder]", "type PLAC; else OBR-2"),
        ("ORC-3", "ServiceRequest.identifier[fillerOrder]", "type FILL; else OBR-3"),
        ("OBR-18", "ServiceRequest.identifier[accessionNumber]", "type ACSN (ORM^O01)"),
        ("IPC-1", "ServiceRequest.identifier[accessionNumber]", "type ACSN (OMI^O23)"),
        ("ORC-1", "ServiceRequest.status", "with ORC-5, status map §6.4"),
        ("ORC-9", "ServiceRequest.authoredOn", "I-16"),
        ("ORC-12", "ServiceRequest.requester", "else OBR-16"),
        ("OBR-4", "ServiceRequest.code.concept", "orderable (components 1-3)"),
        ("NTE-3", "ServiceRequest.note.text", ""),
    ],
    PROFILE_RP: [
        ("OBR-19", "ServiceRequest.identifier[requestedProcedureId]", "type RPID (ORM^O01)"),
        ("IPC-2", "ServiceRequest.identifier[requestedProcedureId]", "type RPID (OMI^O23)"),
        ("OBR-44", "ServiceRequest.code.concept", ""),
        ("OBR-31", "ServiceRequest.reason.concept", ""),
        ("ORC-7.6", "ServiceRequest.priority", "S → stat, A → asap, R → routine, else urgent"),
        ("TQ1-9", "ServiceRequest.priority", "v2.5.1"),
    ],
    PROFILE_SPS: [
        ("OBR-20", "Task.identifier[spsId]", "type SPSID (ORM^O01)"),
        ("IPC-4", "Task.identifier[spsId]", "type SPSID (OMI^O23)"),
        ("OBR-4.4", "Task.code.coding", "components 4-6: Scheduled Protocol"),
        ("OBR-4.5", "Task.code.text", "SPS Description"),
        ("IPC-6", "Task.code.coding", "repeating; text = IPC-6.2 of the first"),
        ("OBR-24", "Task.input[modality].valueCodeableConcept", "DCM code"),
        ("IPC-5", "Task.input[modality].valueCodeableConcept", "DCM code"),
        ("ORC-7.4", "Task.requestedPeriod.start", "TQ start (v2.3.1)"),
        ("TQ1-7", "Task.requestedPeriod.start", "v2.5.1"),
        ("TQ1-8", "Task.requestedPeriod.end", "v2.5.1"),
        ("OBR-34", "Task.owner", "Technician / performing physician"),
        ("IPC-8", "Task.location", "Location from CWE"),
        ("ORC-5", "Task.status", "status map §6.4"),
    ],
    PROFILE_STATION: [
        ("IPC-9", "Device.name[aeTitle].value", "registered-name"),
        ("IPC-7", "Device.name[stationName].value", "user-friendly-name"),
    ],
    PROFILE_STUDY: [
        ("ZDS-1", "ImagingStudy.identifier[studyInstanceUid].value", "urn:oid: + ZDS-1.1"),
        ("IPC-3", "ImagingStudy.identifier[studyInstanceUid].value", "urn:oid: + IPC-3.1"),
    ],
}


def v2_to_fhir_conceptmap() -> dict[str, Any]:
    cm = meta(
        "ConceptMap",
        "v2-to-fhir-order",
        "V2ToFhirOrder",
        "HL7 v2 order messages to the guide's FHIR resources",
        "One row per v2 field: ORM^O01, OMG^O19, OMI^O23 and ADT fields → profiled element.",
    )
    groups = []
    for profile, rows in [*V2_ROWS.items(), *V2_CLINICAL_ROWS.items()]:
        elements = []
        for field, path, comment in rows:
            target: dict[str, Any] = {"code": path, "relationship": "equivalent"}
            if comment:
                target["comment"] = comment
            elements.append({"code": field, "target": [target]})
        groups.append({"source": V2_SOURCE, "target": profile, "element": elements})
    cm["group"] = groups
    return cm
