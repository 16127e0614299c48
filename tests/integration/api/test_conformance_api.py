"""The guide's conformance resources and profile validation, through the HTTP API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirmwl.fhir.model import PROFILE_ISR
from tests.conftest import ig_examples, running_broker


def isr_without_accession() -> dict[str, Any]:
    isr = ig_examples()["entry"][2]["resource"]
    isr["identifier"] = isr["identifier"][1:]  # drop ACSN
    isr["subject"] = {"reference": "Patient/unknown"}
    return isr


def test_conformance_resources_are_served(client: httpx.Client) -> None:
    sd = client.get("/StructureDefinition/imaging-service-request")
    assert sd.status_code == 200 and sd.json()["url"] == PROFILE_ISR
    found = client.get("/StructureDefinition", params={"url": PROFILE_ISR}).json()
    assert found["total"] == 1
    for rtype in (
        "ConceptMap",
        "OperationDefinition",
        "SearchParameter",
        "ValueSet",
        "CapabilityStatement",
    ):
        bundle = client.get(f"/{rtype}").json()
        assert bundle["total"] >= 1, rtype
    assert (
        client.post(
            "/StructureDefinition", json={"resourceType": "StructureDefinition"}
        ).status_code
        == 405
    )
    assert client.get("/StructureDefinition", params={"bogus": "1"}).status_code == 400
    meta = client.get("/metadata").json()
    sr = next(r for r in meta["rest"][0]["resource"] if r["type"] == "ServiceRequest")
    assert PROFILE_ISR in sr["supportedProfile"]


def test_validate_operation_names_the_element(client: httpx.Client) -> None:
    r = client.post("/ServiceRequest/$validate", json=isr_without_accession())
    assert r.status_code == 200
    text = json.dumps(r.json())
    assert "imaging-service-request" in text and "accessionNumber" in text


def test_strict_validation_refuses_and_stores_nothing(client: httpx.Client) -> None:
    isr = isr_without_accession()  # the broker assigns a missing accession number …
    del isr["subject"]  # … but not the patient the profile requires
    r = client.post("/ServiceRequest", json=isr)
    assert r.status_code == 422
    assert "ServiceRequest.subject" in json.dumps(r.json())
    assert client.get("/ServiceRequest").json()["entry"] == []


def test_an_order_posted_alone_gets_its_accession_number(client: httpx.Client) -> None:
    r = client.post("/ServiceRequest", json=isr_without_accession())
    assert r.status_code == 201, r.text
    stored = client.get(r.headers["location"].rsplit("/_history", 1)[0]).json()
    assert [i for i in stored["identifier"] if i["type"]["coding"][0]["code"] == "ACSN"]


@pytest.fixture
def lenient_client(tmp_path: Path) -> Iterator[httpx.Client]:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with (
        running_broker(db, validation="lenient") as runtime,
        httpx.Client(base_url=runtime.settings.fhir_base, timeout=30) as c,
    ):
        yield c


def test_lenient_validation_stores_and_warns(lenient_client: httpx.Client) -> None:
    r = lenient_client.post(
        "/ServiceRequest",
        json=isr_without_accession(),
        headers={"Prefer": "return=OperationOutcome"},
    )
    assert r.status_code == 201
    severities = {i["severity"] for i in r.json()["issue"]}
    assert "warning" in severities and "error" not in severities
