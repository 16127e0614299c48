"""Audit records and their two renderings: a FHIR R5 AuditEvent and a DICOM audit message.

Pure functions over one plain ``AuditRecord`` the doors fill in. The FHIR shape follows IHE BALP
(Basic Audit Log Patterns): ``category`` carries the event type (audit-event-type ``rest`` for
the REST API, DICOM DCM codes for DICOM and HL7 events), ``code`` the interaction or subtype,
``agent`` the requestor (client id / token subject / AE title / sending application, with its
network address) and fhirmwl itself, ``entity`` the patient(s), the resources concerned and, for
queries, the query itself. The DICOM rendering is the PS3.15 A.5 ``AuditMessage`` XML (the RFC
3881 schema) that audit record repositories receive over syslog. See docs/audit.md.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
OUTCOME = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

Code = tuple[str, str, str]  # (system, code, display)

REST: Code = (EVENT_TYPE, "rest", "RESTful Operation")
QUERY: Code = (DCM, "110112", "Query")
ORDER_RECORD: Code = (DCM, "110109", "Order Record")
PATIENT_RECORD: Code = (DCM, "110110", "Patient Record")
PROCEDURE_RECORD: Code = (DCM, "110111", "Procedure Record")
APPLICATION_ACTIVITY: Code = (DCM, "110100", "Application Activity")
APPLICATION_START: Code = (DCM, "110120", "Application Start")
APPLICATION_STOP: Code = (DCM, "110121", "Application Stop")
SECURITY_ALERT: Code = (DCM, "110113", "Security Alert")
USER_AUTHENTICATION: Code = (DCM, "110114", "User Authentication")
NODE_AUTHENTICATION: Code = (DCM, "110126", "Node Authentication")
ACCESS_CONTROL: Code = (DCM, "110130", "Unauthorized Use Detected")
OBJECT_CHANGED: Code = (DCM, "110136", "Security Roles Changed")

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = "0", "4", "8", "12"


def interaction(code: str) -> Code:
    return (INTERACTION, code, code)


@dataclass
class AuditRecord:
    """One audited access, as a door saw it. Strings only; no resource content."""

    recorded: str
    door: str  # http | mllp | dicom | system
    action: str  # C R U D E
    category: Code
    code: Code
    outcome: str = SUCCESS
    outcome_text: str = ""
    agent_id: str = ""  # token client id / sub, AE title, sending application, or "anonymous"
    agent_name: str = ""
    agent_network: str = ""  # peer address
    agent_cert: str = ""  # client certificate subject, when TLS authenticated the peer
    observer: str = "fhirmwl"
    patients: list[str] = field(default_factory=list)  # Patient ids
    entities: list[str] = field(default_factory=list)  # "Type/id" of other resources concerned
    query: bytes | None = None  # the query as received (URL query, C-FIND identifier bytes)
    details: dict[str, str] = field(default_factory=dict)

    def to_fhir(self, event_id: str | None = None) -> dict[str, Any]:
        return to_fhir(self, event_id)


def _coding(code: Code) -> dict[str, str]:
    return {"system": code[0], "code": code[1], "display": code[2]}


def to_fhir(rec: AuditRecord, event_id: str | None = None) -> dict[str, Any]:
    """The FHIR R5 AuditEvent of a record."""
    requestor: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"value": rec.agent_id or "anonymous"}},
        "requestor": True,
    }
    if rec.agent_name:
        requestor["who"]["display"] = rec.agent_name
    if rec.agent_network:
        requestor["networkString"] = rec.agent_network
    if rec.agent_cert:
        requestor["policy"] = [f"urn:x509-subject:{rec.agent_cert}"]
    observer = {
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": rec.observer},
        "requestor": False,
    }
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "role": {"coding": [{"system": OBJECT_ROLE, "code": "1", "display": "Patient"}]},
        }
        for pid in rec.patients
    ]
    entities += [{"what": {"reference": ref}} for ref in rec.entities]
    if rec.query is not None or rec.details:
        entity: dict[str, Any] = {
            "role": {"coding": [{"system": OBJECT_ROLE, "code": "24", "display": "Query"}]}
        }
        if rec.query is not None:
            entity["query"] = base64.b64encode(rec.query).decode("ascii")
        if rec.details:
            entity["detail"] = [
                {"type": {"text": key}, "valueString": value}
                for key, value in sorted(rec.details.items())
                if value
            ]
        entities.append(entity)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "category": [{"coding": [_coding(rec.category)]}],
        "code": {"coding": [_coding(rec.code)]},
        "action": rec.action,
        "recorded": rec.recorded,
        "outcome": {"code": {"system": OUTCOME, "code": rec.outcome}},
        "agent": [requestor, observer],
        "source": {
            "observer": {"display": rec.observer},
            "type": [
                {"coding": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]}
            ],
        },
    }
    if event_id:
        event["id"] = event_id
        event["meta"] = {"lastUpdated": rec.recorded}
    if rec.outcome_text:
        event["outcome"]["detail"] = [{"text": rec.outcome_text}]
    if rec.patients:
        event["patient"] = {"reference": f"Patient/{rec.patients[0]}"}
    if entities:
        event["entity"] = entities
    return event


def to_dicom_xml(rec: AuditRecord) -> bytes:
    """The DICOM PS3.15 A.5 audit message (RFC 3881 schema) of a record, UTF-8 XML."""
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        EventActionCode=rec.action,
        EventDateTime=rec.recorded,
        EventOutcomeIndicator=rec.outcome,
    )
    ET.SubElement(
        ident,
        "EventID",
        {"csd-code": rec.category[1], "codeSystemName": _system_name(rec.category[0])},
        originalText=rec.category[2],
    )
    if rec.code != rec.category:
        ET.SubElement(
            ident,
            "EventTypeCode",
            {"csd-code": rec.code[1], "codeSystemName": _system_name(rec.code[0])},
            originalText=rec.code[2],
        )
    if rec.outcome_text:
        ET.SubElement(ident, "EventOutcomeDescription").text = rec.outcome_text
    requestor = ET.SubElement(
        root,
        "ActiveParticipant",
        UserID=rec.agent_id or "anonymous",
        UserIsRequestor="true",
    )
    if rec.agent_name:
        requestor.set("AlternativeUserID", rec.agent_name)
    if rec.agent_network:
        requestor.set("NetworkAccessPointID", rec.agent_network.rsplit(":", 1)[0])
        requestor.set("NetworkAccessPointTypeCode", "2")
    ET.SubElement(
        requestor, "RoleIDCode", {"csd-code": "110153", "codeSystemName": "DCM"},
        originalText="Source Role ID",
    )  # fmt: skip
    me = ET.SubElement(root, "ActiveParticipant", UserID=rec.observer, UserIsRequestor="false")
    ET.SubElement(
        me, "RoleIDCode", {"csd-code": "110152", "codeSystemName": "DCM"},
        originalText="Destination Role ID",
    )  # fmt: skip
    ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=rec.observer)
    for pid in rec.patients:
        obj = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            ParticipantObjectID=pid,
            ParticipantObjectTypeCode="1",
            ParticipantObjectTypeCodeRole="1",
        )
        ET.SubElement(
            obj, "ParticipantObjectIDTypeCode", {"csd-code": "2", "codeSystemName": "RFC-3881"},
            originalText="Patient Number",
        )  # fmt: skip
    if rec.query is not None:
        obj = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            ParticipantObjectID=rec.details.get("sop_class", rec.door),
            ParticipantObjectTypeCode="2",
            ParticipantObjectTypeCodeRole="24",
        )
        ET.SubElement(
            obj, "ParticipantObjectIDTypeCode", {"csd-code": "110181", "codeSystemName": "DCM"},
            originalText="SOP Class UID",
        )  # fmt: skip
        ET.SubElement(obj, "ParticipantObjectQuery").text = base64.b64encode(rec.query).decode()
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _system_name(system: str) -> str:
    return {DCM: "DCM", EVENT_TYPE: "audit-event-type", INTERACTION: "restful-interaction"}.get(
        system, system
    )
