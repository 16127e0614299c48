"""The FHIR REST API over real HTTP: interactions, headers, errors, bundles, search."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ig_examples


def patient(mrn: str = "M1", family: str = "Doe") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family}],
    }


def assert_outcome(r: httpx.Response, status: int, text: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert text in json.dumps(body)
    return body


def test_metadata_lists_types_and_search_params(client: httpx.Client) -> None:
    r = client.get("/metadata")
    assert r.status_code == 200
    rest = r.json()["rest"][0]
    types = {res["type"]: res for res in rest["resource"]}
    assert {
        "Patient",
        "ServiceRequest",
        "Task",
        "Device",
        "ImagingStudy",
        "Encounter",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
    } <= set(types)
    params = {p["name"] for p in types["Task"]["searchParam"]}
    assert {"identifier", "based-on", "requested-period", "modality", "_id"} <= params


def test_crud_headers_and_history(client: httpx.Client) -> None:
    r = client.post("/Patient", json=patient())
    assert r.status_code == 201
    pid = r.json()["id"]
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    assert "GMT" in r.headers["last-modified"]
    r = client.put(
        f"/Patient/{pid}", json=patient(family="Roe") | {"id": pid}, headers={"If-Match": 'W/"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    assert_outcome(
        client.put(f"/Patient/{pid}", json=patient() | {"id": pid}, headers={"If-Match": 'W/"1"'}),
        412,
        "version conflict",
    )
    assert client.get(f"/Patient/{pid}/_history/1").json()["name"][0]["family"] == "Doe"
    hist = client.get(f"/Patient/{pid}/_history").json()
    assert hist["type"] == "history" and len(hist["entry"]) == 2
    assert client.get("/Patient/_history").json()["entry"]
    assert client.delete(f"/Patient/{pid}").status_code == 204
    assert_outcome(client.get(f"/Patient/{pid}"), 410, "deleted")
    assert_outcome(client.get("/Patient/nope"), 404, "not known")


def test_prefer_return(client: httpx.Client) -> None:
    r = client.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and "location" in r.headers
    r = client.post("/Patient", json=patient("M2"), headers={"Prefer": "return=OperationOutcome"})
    assert_outcome(r, 201, "created Patient/")


def test_conditional_create_and_update(client: httpx.Client) -> None:
    first = client.post(
        "/Patient", json=patient("C1"), headers={"If-None-Exist": "identifier=urn:mrn|C1"}
    )
    again = client.post(
        "/Patient", json=patient("C1"), headers={"If-None-Exist": "identifier=urn:mrn|C1"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    r = client.put("/Patient?identifier=urn:mrn|C1", json=patient("C1", "Updated"))
    assert r.status_code == 200 and r.json()["id"] == first.json()["id"]
    r = client.put("/Patient?identifier=urn:mrn|C9", json=patient("C9"))
    assert r.status_code == 201


def test_errors_are_operation_outcomes(client: httpx.Client) -> None:
    assert_outcome(client.post("/Patient", content=b"{nope"), 400, "not valid JSON")
    assert_outcome(
        client.post(
            "/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
        ),
        400,
        "namespace http://hl7.org/fhir",
    )
    assert_outcome(
        client.post("/Patient", content=b"Patient", headers={"Content-Type": "text/plain"}),
        415,
        "application/fhir+xml",
    )
    assert_outcome(
        client.post("/Patient", json={"resourceType": "Patient", "birthDate": "x"}),
        422,
        "Patient.birthDate",
    )
    assert_outcome(client.post("/Patient", json={"resourceType": "Task"}), 422, "resourceType")
    assert_outcome(client.get("/Foo/1"), 404, "not supported")
    assert_outcome(client.patch("/Patient/1", json={}), 405, "PATCH")
    assert_outcome(client.get("/Patient?birthdate=notadate"), 400, "invalid date")
    assert_outcome(
        client.get("/Patient?bogus=1", headers={"Prefer": "handling=strict"}),
        400,
        "unknown search parameter",
    )
    lenient = client.get("/Patient?bogus=1")
    assert lenient.status_code == 200 and "bogus" not in lenient.json()["link"][0]["url"]


def test_transaction_search_include_and_paging(client: httpx.Client) -> None:
    r = client.post("", json=ig_examples())
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|A12345"
    found = client.get("/ServiceRequest", params={"identifier:of-type": of_type}).json()
    assert len(found["entry"]) == 1 and found["total"] == 1
    bundle = client.get(
        "/Task",
        params=[
            ("patient.identifier", "PID12345"),
            ("_include", "Task:based-on"),
            ("_include:iterate", "ServiceRequest:based-on"),
            ("_include", "Task:patient"),
            ("_revinclude:iterate", "ImagingStudy:based-on"),
        ],
    ).json()
    modes = sorted((e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"])
    assert modes == [
        ("ImagingStudy", "include"),
        ("Patient", "include"),
        ("ServiceRequest", "include"),
        ("ServiceRequest", "include"),
        ("Task", "match"),
    ]
    for n in range(5):
        client.post("/Patient", json=patient(f"PG{n}", "Page"))
    page = client.get("/Patient", params={"family": "page", "_count": "2"}).json()
    nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
    assert len(page["entry"]) == 2 and nxt
    page2 = httpx.get(nxt[0]).json()
    assert len(page2["entry"]) == 2
    assert {e["resource"]["id"] for e in page["entry"]}.isdisjoint(
        e["resource"]["id"] for e in page2["entry"]
    )
    count = client.get("/Patient", params={"family": "page", "_summary": "count"}).json()
    assert count["total"] == 5 and "entry" not in count
    post_search = client.post(
        "/Patient/_search",
        content=b"family=page&_count=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert len(post_search.json()["entry"]) == 1
    elements = client.get("/Patient", params={"family": "page", "_elements": "name"}).json()
    assert all("identifier" not in e["resource"] for e in elements["entry"])


def test_failed_transaction_writes_nothing(client: httpx.Client) -> None:
    bundle = ig_examples()
    bundle["entry"][3]["resource"]["intent"] = 17
    assert_outcome(client.post("", json=bundle), 422, "entry[3]")
    assert client.get("/Patient", params={"identifier": "PID12345"}).json()["entry"] == []


def test_batch_reports_each_entry(client: httpx.Client) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient("B1"), "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
        ],
    }
    r = client.post("", json=batch).json()
    assert [e["response"]["status"][:3] for e in r["entry"]] == ["201", "404"]
