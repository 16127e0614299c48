"""One imaging order written twice: as an HL7 v2 OMI^O23 and as a $create-order Bundle.

Neither names what the broker assigns (accession number, Requested Procedure ID, Study Instance
UID, SPS ID), so both doors must complete the same order the same way; the tests compare the
worklist items they produce.
"""

from __future__ import annotations

from typing import Any

OMI_NO_IDS = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|20250101120000||OMI^O23^OMI_O23|{cid}|P|2.5.1\r"
    "PID|||PAT9^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "ORC|NW|{placer}^RIS|||||||20250101115500|||ORD01^JONES^AMY\r"
    "TQ1|1||||||20250102090000||R\r"
    "OBR|1|{placer}^RIS||MRHEAD^MR head^LOCAL\r"
    "IPC|||||MR|P2^MR head protocol^LOCAL|MR Room 1||MR1_AE\r"
)

LOCAL = "urn:fhirmwl:v2-coding-system:LOCAL"
IG = "http://hl7.org/fhir/uv/imaging-service-request-ig/StructureDefinition"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def omi(placer: str, cid: str) -> bytes:
    return OMI_NO_IDS.format(placer=placer, cid=cid).encode()


def _entry(url: str, resource: dict[str, Any], **request: str) -> dict[str, Any]:
    rtype = resource["resourceType"]
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": rtype, **request},
    }


def create_order_bundle(placer: str) -> dict[str, Any]:
    """The same order as ``omi(placer, …)`` in FHIR, as a RIS would send it to $create-order."""
    patient = {
        "resourceType": "Patient",
        "meta": {"profile": [f"{IG}/imaging-patient"]},
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": "urn:fhirmwl:issuer:HOSP",
                "value": "PAT9",
            }
        ],
        "name": [{"family": "DOE", "given": ["JANE"]}],
        "birthDate": "1980-01-01",
        "gender": "female",
    }
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "urn:fhirmwl:id:practitioner", "value": "ORD01"}],
        "name": [{"family": "JONES", "given": ["AMY"]}],
    }
    code = {"concept": {"coding": [{"system": LOCAL, "code": "MRHEAD", "display": "MR head"}]}}
    code["concept"]["text"] = "MR head"
    isr = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [f"{IG}/imaging-service-request"]},
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                "system": "urn:fhirmwl:issuer:RIS",
                "value": placer,
            }
        ],
        "status": "active",
        "intent": "order",
        "subject": {"reference": "urn:uuid:p"},
        "code": code,
        "authoredOn": "2025-01-01T11:55:00+00:00",
        "priority": "routine",
        "requester": {"reference": "urn:uuid:dr", "display": "AMY JONES"},
    }
    rp = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [f"{IG}/imaging-requested-procedure"]},
        "basedOn": [{"reference": "urn:uuid:isr"}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": "urn:uuid:p"},
        "code": code,
        "priority": "routine",
    }
    device = {
        "resourceType": "Device",
        "meta": {"profile": [f"{IG}/scheduled-station"]},
        "identifier": [{"system": "urn:fhirmwl:id:ae-title", "value": "MR1_AE"}],
        "name": [
            {"value": "MR1_AE", "type": "registered-name"},
            {"value": "MR Room 1", "type": "user-friendly-name"},
        ],
    }
    task = {
        "resourceType": "Task",
        "meta": {"profile": [f"{IG}/imaging-scheduled-procedure-step"]},
        "basedOn": [{"reference": "urn:uuid:rp"}],
        "status": "requested",
        "intent": "plan",
        "for": {"reference": "urn:uuid:p"},
        "code": {
            "coding": [{"system": LOCAL, "code": "P2", "display": "MR head protocol"}],
            "text": "MR head protocol",
        },
        "requestedPeriod": {"start": "2025-01-02T09:00:00+00:00"},
        "input": [
            {
                "type": {"coding": [{"system": DCM, "code": "121139", "display": "Modality"}]},
                "valueCodeableConcept": {"coding": [{"system": DCM, "code": "MR"}]},
            }
        ],
        "requestedPerformer": [{"reference": {"reference": "urn:uuid:dev"}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry("urn:uuid:isr", isr),
            _entry("urn:uuid:rp", rp),
            _entry("urn:uuid:task", task),
            _entry("urn:uuid:p", patient, ifNoneExist="identifier=urn:fhirmwl:issuer:HOSP|PAT9"),
            _entry(
                "urn:uuid:dr",
                practitioner,
                ifNoneExist="identifier=urn:fhirmwl:id:practitioner|ORD01",
            ),
            _entry("urn:uuid:dev", device, ifNoneExist="identifier=urn:fhirmwl:id:ae-title|MR1_AE"),
        ],
    }
