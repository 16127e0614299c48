"""Outbound OMI^O23 / ORM^O01 text from an order graph (pure): golden files and a round trip
through the broker's own HL7 v2 intake mapping (what we send maps back to the same order)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fhirmwl.fhir import model
from fhirmwl.mapping.v2_to_fhir import MappingContext, OrderMessage
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.outbound.config import parse_destinations
from fhirmwl.outbound.messages import CANCELLED, SCHEDULED, STATUS, UPDATED, build_message
from fhirmwl.outbound.view import OrderView, order_view

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "hl7v2.md"


def graph(task_status: str = "requested") -> OrderView:
    isr = {
        "resourceType": "ServiceRequest",
        "id": "isr",
        "status": "active",
        "priority": "stat",
        "authoredOn": "2030-01-01T08:00:00+01:00",
        "subject": {"reference": "Patient/p"},
        "requester": {"reference": "Practitioner/dr"},
        "identifier": [
            model.typed_identifier(model.PLAC, "PLC|1", "urn:fhirmwl:issuer:RIS"),
            model.typed_identifier(model.FILL, "FIL1"),
            model.typed_identifier(model.ACSN, "ACC1", "urn:oid:1.2.3"),
        ],
        "reason": [{"concept": {"text": "pain^abdomen"}}],
    }
    rp = {
        "resourceType": "ServiceRequest",
        "id": "rp",
        "status": "active",
        "basedOn": [{"reference": "ServiceRequest/isr"}],
        "identifier": [model.typed_identifier(model.RPID, "RP1")],
        "code": {
            "concept": {
                "coding": [{"system": "http://loinc.org", "code": "72254-7", "display": "CT A/P"}]
            }
        },
    }
    task = {
        "resourceType": "Task",
        "id": "t",
        "status": task_status,
        "basedOn": [{"reference": "ServiceRequest/rp"}],
        "identifier": [model.typed_identifier(model.SPSID, "SPS1")],
        "input": [model.modality_input("CT")],
        "code": {"coding": [{"system": "urn:fhirmwl:v2-coding-system:LOCAL", "code": "P1"}]},
        "requestedPeriod": {"start": "2030-01-02T09:00:00+01:00"},
        "requestedPerformer": [{"reference": {"reference": "Device/d"}}],
        "location": {"display": "Room 1"},
    }
    study = {
        "resourceType": "ImagingStudy",
        "basedOn": [{"reference": "ServiceRequest/rp"}],
        "identifier": [{"system": model.DICOM_UID_SYSTEM, "value": "urn:oid:1.2.826.0.1.9"}],
    }
    others: dict[str, dict[str, Any]] = {
        "Patient/p": {
            "resourceType": "Patient",
            "identifier": [model.typed_identifier(model.MR, "PAT1", "urn:fhirmwl:issuer:HOSP")],
            "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
            "birthDate": "1980-01-31",
            "gender": "female",
        },
        "Practitioner/dr": {"name": [{"family": "Jones", "given": ["Amy"]}]},
        "Encounter/e": {
            "identifier": [model.typed_identifier(model.VN, "VIS1")],
            "class": [{"coding": [{"code": "IMP"}]}],
        },
        "Device/d": {
            "name": [
                {"value": "CT1_AE", "type": "registered-name"},
                {"value": "CT Room 1", "type": "user-friendly-name"},
            ]
        },
    }
    return order_view(isr, [rp], [task], [study], others)


CASES = [
    ("omi-nw", "OMI^O23", SCHEDULED, "requested"),
    ("omi-xo", "OMI^O23", UPDATED, "requested"),
    ("omi-dc", "OMI^O23", CANCELLED, "in-progress"),
    ("omi-sc-ip", "OMI^O23", STATUS, "in-progress"),
    ("orm-nw", "ORM^O01", SCHEDULED, "requested"),
]


@pytest.mark.parametrize(("name", "kind", "event", "status"), CASES)
def test_golden(name: str, kind: str, event: str, status: str) -> None:
    [dest] = parse_destinations([{"name": "PACS", "host": "h", "message_type": kind}])
    text = build_message(graph(status), event, dest.header, "0000000042", "20300101120000")
    path = GOLDEN / f"{name}.hl7"
    if os.environ.get("FHIRMWL_UPDATE_GOLDEN"):
        path.write_text(text.replace("\r", "\n"), encoding="utf-8")
    assert text.replace("\r", "\n") == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["OMI^O23", "ORM^O01"])
def test_round_trip_through_the_intake(kind: str) -> None:
    [dest] = parse_destinations([{"name": "PACS", "host": "h", "message_type": kind}])
    text = build_message(graph(), SCHEDULED, dest.header, "1", "20300101120000")
    result = evaluate(text.encode("utf-8"), MappingContext(timezone="Europe/Berlin"))
    assert isinstance(result.mapped, OrderMessage), result.ack
    [group] = result.mapped.groups
    assert group.accession[1] == "ACC1" and group.sps_ids == ["SPS1"]
    assert group.requested_procedure_ids == ["RP1"] and not group.generated
    assert group.study_instance_uids == ["1.2.826.0.1.9"]
    resources = [e["resource"] for e in result.mapped.bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert patient["name"][0]["family"] == "Müller"
    task = next(r for r in resources if r["resourceType"] == "Task")
    assert task["requestedPeriod"]["start"].startswith("2030-01-02T09:00:00")


def test_docs_toml_example_is_valid() -> None:
    import tomllib

    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```toml\n[[hl7_destinations]]", 1)[1].split("```", 1)[0]
    dests = parse_destinations(tomllib.loads("[[hl7_destinations]]" + block)["hl7_destinations"])
    assert [d.name for d in dests] == ["pacs", "ris", "archive"]
    assert (dests[2].tls, dests[2].tls_ca) == (True, "/etc/fhirmwl/archive-ca.pem")
    assert not dests[0].tls and dests[0].tls_context() is None
    assert dests[0].filters == (("modality", "CT,MR"), ("station", "CT1"))
    assert dests[1].events == ("order-status",) and dests[1].header.message_type == "ORM^O01"


def test_bad_destinations_are_refused() -> None:
    from fhirmwl.errors import BadRequest

    for entry in ({"name": "x"}, {"name": "x", "host": "h", "tls": "yes"}):
        with pytest.raises(BadRequest):
            parse_destinations([entry])
    with pytest.raises(BadRequest, match="unknown"):
        parse_destinations([{"name": "x", "host": "h", "messages": ["procedure-deleted"]}])


def test_destinations_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirmwl.config import load_settings

    monkeypatch.setenv(
        "FHIRMWL_HL7_DESTINATIONS", '[{"name": "pacs", "host": "127.0.0.1", "port": 2576}]'
    )
    [dest] = parse_destinations(load_settings(None).hl7_destinations)
    assert (dest.name, dest.port, dest.header.message_type) == ("pacs", 2576, "OMI^O23")
    from fhirmwl.errors import BadRequest

    with pytest.raises(BadRequest, match="JSON"):
        parse_destinations("[not json")
