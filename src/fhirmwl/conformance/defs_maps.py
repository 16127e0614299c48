"""The FHIR → DICOM MWL map (spec digest §3.3) and the HL7 v2 → FHIR map as R5 ConceptMaps.

The guide's ConceptMaps are documentation with structural defects (digest §3.2, I-6, I-15 …
I-20); these are complete, one row per DICOM attribute, and machine-checkable: the worklist
builder and the v2 intake are tested against ``registry.conceptmap_rows``.
Source paths are FHIRPath-like with slice names in brackets (``identifier[accessionNumber]``).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import DICOM_PART6, meta
from fhirmwl.conformance.defs_maps_clinical import MWL_CLINICAL_ROWS
from fhirmwl.fhir.model import (
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
)

# profile → rows of (source path, DICOM keyword, tag, VR, in SPS item, comment)
MWL_ROWS: dict[str, list[tuple[str, str, str, str, bool, str]]] = {
    PROFILE_SPS: [
        ("Task", "ScheduledProcedureStepSequence", "00400100", "SQ", False, "one item per Task"),
        (
            "Task.requestedPeriod.start",
            "ScheduledProcedureStepStartDate",
            "00400002",
            "DA",
            True,
            "local date of the station time zone",
        ),
        (
            "Task.requestedPeriod.start",
            "ScheduledProcedureStepStartTime",
            "00400003",
            "TM",
            True,
            "local time of the station time zone",
        ),
        ("Task.requestedPeriod.end", "ScheduledProcedureStepEndDate", "00400004", "DA", True, ""),
        ("Task.requestedPeriod.end", "ScheduledProcedureStepEndTime", "00400005", "TM", True, ""),
        (
            "Task.input[modality].valueCodeableConcept",
            "Modality",
            "00080060",
            "CS",
            True,
            "code of the DCM coding",
        ),
        (
            "Task.owner",
            "ScheduledPerformingPhysicianName",
            "00400006",
            "PN",
            True,
            "Practitioner.name; else a Practitioner in requestedPerformer",
        ),
        (
            "Task.code.text",
            "ScheduledProcedureStepDescription",
            "00400007",
            "LO",
            True,
            "else code.coding[0].display",
        ),
        (
            "Task.code.coding",
            "ScheduledProtocolCodeSequence",
            "00400008",
            "SQ",
            True,
            "one item per coding",
        ),
        (
            "Task.location",
            "ScheduledProcedureStepLocation",
            "00400011",
            "SH",
            True,
            "Location.name",
        ),
        ("Task.identifier[spsId].value", "ScheduledProcedureStepID", "00400009", "SH", True, ""),
        (
            "Task.status",
            "ScheduledProcedureStepStatus",
            "00400020",
            "CS",
            True,
            "requested/received/accepted → SCHEDULED, ready → READY, in-progress → STARTED",
        ),
    ],
    PROFILE_STATION: [
        (
            "Device.name[aeTitle].value",
            "ScheduledStationAETitle",
            "00400001",
            "AE",
            True,
            "Device referenced by Task.requestedPerformer[scheduledStation]",
        ),
        (
            "Device.name[stationName].value",
            "ScheduledStationName",
            "00400010",
            "SH",
            True,
            "name with type user-friendly-name",
        ),
    ],
    PROFILE_RP: [
        (
            "ServiceRequest.identifier[requestedProcedureId].value",
            "RequestedProcedureID",
            "00401001",
            "SH",
            False,
            "",
        ),
        (
            "ServiceRequest.code.concept.text",
            "RequestedProcedureDescription",
            "00321060",
            "LO",
            False,
            "else code.concept.coding[0].display",
        ),
        (
            "ServiceRequest.code.concept.coding",
            "RequestedProcedureCodeSequence",
            "00321064",
            "SQ",
            False,
            "first coding, single item",
        ),
        (
            "ServiceRequest.priority",
            "RequestedProcedurePriority",
            "00401003",
            "SH",
            False,
            "stat → STAT, asap/urgent → HIGH, routine → ROUTINE",
        ),
        (
            "ServiceRequest.reason.concept.text",
            "ReasonForTheRequestedProcedure",
            "00401002",
            "LO",
            False,
            "",
        ),
        (
            "ServiceRequest.reason.concept.coding",
            "ReasonForRequestedProcedureCodeSequence",
            "0040100A",
            "SQ",
            False,
            "",
        ),
        (
            "ServiceRequest.note.text",
            "RequestedProcedureComments",
            "00401400",
            "LT",
            False,
            "I-18: from note, not reason",
        ),
    ],
    PROFILE_STUDY: [
        (
            "ImagingStudy.identifier[studyInstanceUid].value",
            "StudyInstanceUID",
            "0020000D",
            "UI",
            False,
            "urn:oid: prefix removed; ImagingStudy based on the RP (I-14)",
        ),
    ],
    PROFILE_ISR: [
        (
            "ServiceRequest.identifier[accessionNumber].value",
            "AccessionNumber",
            "00080050",
            "SH",
            False,
            "",
        ),
        (
            "ServiceRequest.identifier[accessionNumber].system",
            "IssuerOfAccessionNumberSequence",
            "00080051",
            "SQ",
            False,
            "Universal Entity ID / type from the system URI",
        ),
        (
            "ServiceRequest.identifier[placerOrder].value",
            "PlacerOrderNumberImagingServiceRequest",
            "00402016",
            "LO",
            False,
            "",
        ),
        (
            "ServiceRequest.identifier[placerOrder].system",
            "OrderPlacerIdentifierSequence",
            "00400026",
            "SQ",
            False,
            "",
        ),
        (
            "ServiceRequest.identifier[fillerOrder].value",
            "FillerOrderNumberImagingServiceRequest",
            "00402017",
            "LO",
            False,
            "",
        ),
        (
            "ServiceRequest.identifier[fillerOrder].system",
            "OrderFillerIdentifierSequence",
            "00400027",
            "SQ",
            False,
            "",
        ),
        (
            "ServiceRequest.requester",
            "RequestingPhysician",
            "00321032",
            "PN",
            False,
            "Practitioner.name (or PractitionerRole.practitioner)",
        ),
        (
            "ServiceRequest.requester",
            "RequestingService",
            "00321033",
            "LO",
            False,
            "Organization.name (or PractitionerRole.organization)",
        ),
        (
            "ServiceRequest.authoredOn",
            "IssueDateOfImagingServiceRequest",
            "00402004",
            "DA",
            False,
            "I-16: authoredOn, not occurrence",
        ),
        (
            "ServiceRequest.authoredOn",
            "IssueTimeOfImagingServiceRequest",
            "00402005",
            "TM",
            False,
            "I-16",
        ),
        ("ServiceRequest.note.text", "ImagingServiceRequestComments", "00402400", "LT", False, ""),
    ],
    PROFILE_VISIT: [
        (
            "Encounter.identifier[visitNumber].value",
            "AdmissionID",
            "00380010",
            "LO",
            False,
            "identifier with type v2-0203#VN (I-20: tag 0038,0010)",
        ),
        (
            "Encounter.identifier[visitNumber].system",
            "IssuerOfAdmissionIDSequence",
            "00380014",
            "SQ",
            False,
            "",
        ),
        (
            "Encounter.location.location",
            "CurrentPatientLocation",
            "00380300",
            "LO",
            False,
            "Location.name",
        ),
        ("Encounter.reason.value.concept.text", "ReasonForVisit", "00321066", "UT", False, ""),
        (
            "Encounter.reason.value.concept.coding",
            "ReasonForVisitCodeSequence",
            "00321067",
            "SQ",
            False,
            "",
        ),
        (
            "Encounter.participant[referrer].actor",
            "ReferringPhysicianName",
            "00080090",
            "PN",
            False,
            "participant type REF (I-22)",
        ),
    ],
    PROFILE_PATIENT: [
        (
            "Patient.name",
            "PatientName",
            "00100010",
            "PN",
            False,
            "official, else usual, else first",
        ),
        (
            "Patient.identifier[primary].value",
            "PatientID",
            "00100020",
            "LO",
            False,
            "first identifier with type MR, else the first",
        ),
        ("Patient.identifier[primary].system", "IssuerOfPatientID", "00100021", "LO", False, ""),
        (
            "Patient.identifier[primary].system",
            "IssuerOfPatientIDQualifiersSequence",
            "00100024",
            "SQ",
            False,
            "",
        ),
        (
            "Patient.identifier",
            "OtherPatientIDsSequence",
            "00101002",
            "SQ",
            False,
            "the identifiers other than the primary one",
        ),
        ("Patient.birthDate", "PatientBirthDate", "00100030", "DA", False, ""),
        (
            "Patient.gender",
            "PatientSex",
            "00100040",
            "CS",
            False,
            "male → M, female → F, other → O, unknown → empty (I-17)",
        ),
    ],
}


def _property_defs(codes: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"code": c, "type": "string", "description": d} for c, d in codes]


def fhir_to_dicom_conceptmap() -> dict[str, Any]:
    cm = meta(
        "ConceptMap",
        "fhir-to-dicom-mwl",
        "FhirToDicomMwl",
        "FHIR R5 order graph to DICOM Modality Worklist item",
        "One row per MWL attribute: source element of the profiled resource → DICOM keyword.",
    )
    cm["property"] = _property_defs(
        [
            ("tag", "DICOM tag (gggg,eeee) as 8 hex digits"),
            ("vr", "Value Representation"),
            ("sps-item", "true when the attribute sits in the SPS Sequence item"),
        ]
    )
    groups = []
    for profile, rows in [*MWL_ROWS.items(), *MWL_CLINICAL_ROWS.items()]:
        elements: dict[str, dict[str, Any]] = {}
        for path, keyword, tag, vr, in_sps, comment in rows:
            target: dict[str, Any] = {"code": keyword, "relationship": "equivalent"}
            if comment:
                target["comment"] = comment
            target["property"] = [
                {"code": "tag", "valueString": tag},
                {"code": "vr", "valueString": vr},
                {"code": "sps-item", "valueString": "true" if in_sps else "false"},
            ]
            elements.setdefault(path, {"code": path, "target": []})["target"].append(target)
        element_list = list(elements.values())
        groups.append({"source": profile, "target": DICOM_PART6, "element": element_list})
    cm["group"] = groups
    return cm
