"""REST details clients trip over, over real HTTP: ``_count=0``, /metadata from the routing
registry, XML or 406, ``If-None-Match``, ``_summary=true``, negative paging values, search
limits, and no database text in answers. fhirpy (a third-party client) is used as is."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
from fhir.resources import get_fhir_model_class
from lxml import etree

from fhirmwl.fhir.search import MAX_OR_VALUES, MAX_VALUE_LENGTH
from fhirmwl.runtime import Runtime

SERVED_EXTRA = (
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "OperationDefinition",
    "SearchParameter",
    "CapabilityStatement",
    "SubscriptionTopic",
)


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": f"R{n}"}],
        "name": [{"family": "Rest", "given": [f"G{n}"]}],
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "communication": [{"language": {"text": "German"}}],
        "gender": "female",
    }


def _load(client: httpx.Client, n: int = 3) -> list[str]:
    return [client.post("/Patient", json=_patient(i)).json()["id"] for i in range(n)]


def test_count_zero_is_a_total(client: httpx.Client, server: Runtime) -> None:
    _load(client)
    r = client.get("/Patient", params={"family": "rest", "_count": "0"}).json()
    assert r["total"] == 3 and "entry" not in r
    assert client.get("/StructureDefinition", params={"_count": "0"}).json()["total"] >= 7
    from fhirpy import SyncFHIRClient

    fhir = SyncFHIRClient(server.settings.fhir_base)
    assert fhir.resources("Patient").search(family="rest").count() == 3
    assert len(fhir.resources("Patient").search(family="rest").fetch_all()) == 3


def test_metadata_lists_every_routed_type(client: httpx.Client) -> None:
    statement = client.get("/metadata").json()
    entries = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for rtype in (*SERVED_EXTRA, "Task", "ServiceRequest", "Patient"):
        assert rtype in entries, rtype
    for rtype, entry in entries.items():
        assert client.get(f"/{rtype}", params={"_count": "1"}).status_code == 200, rtype
        codes = {i["code"] for i in entry["interaction"]}
        assert {"read", "search-type"} <= codes
    assert {i["code"] for i in entries["StructureDefinition"]["interaction"]} == {
        "read",
        "search-type",
    }
    url = next(p for p in entries["ValueSet"]["searchParam"] if p["name"] == "url")
    assert url["type"] == "uri"
    assert client.get("/Medication").status_code == 404
    assert "xml" in statement["format"]


def test_xml_or_406_never_json_under_an_xml_label(client: httpx.Client) -> None:
    pid = _load(client, 1)[0]
    xml = {"Accept": "application/fhir+xml"}
    r = client.get(f"/Patient/{pid}", headers=xml)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+xml")
    patient = get_fhir_model_class("Patient").model_validate_xml(r.content)
    assert patient.id == pid and patient.gender == "female"
    bundle = client.get("/Patient", params={"_format": "xml"})
    assert etree.fromstring(bundle.content).tag == "{http://hl7.org/fhir}Bundle"
    missing = client.get("/Patient/nope", headers=xml)
    assert missing.status_code == 404
    assert etree.fromstring(missing.content).tag == "{http://hl7.org/fhir}OperationOutcome"
    created = client.post(
        "/Patient",
        content=r.content.replace(b'<id value="' + pid.encode() + b'"/>', b""),
        headers={"Content-Type": "application/fhir+xml", **xml},
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/fhir+xml")
    refused = client.get(f"/Patient/{pid}", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/Patient/{pid}", params={"_format": "turtle"}).status_code == 406
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert client.get(f"/Patient/{pid}", headers=browser).json()["id"] == pid
    prefer_xml = {"Accept": "application/fhir+json;q=0.5, application/fhir+xml"}
    assert client.get(f"/Patient/{pid}", headers=prefer_xml).content.startswith(b"<?xml")


def test_if_none_match(client: httpx.Client) -> None:
    pid = _load(client, 1)[0]
    first = client.get(f"/Patient/{pid}")
    etag = first.headers["etag"]
    again = client.get(f"/Patient/{pid}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"9"'}).status_code == 200
    changed = dict(first.json(), active=True)
    assert client.put(f"/Patient/{pid}", json=changed).status_code == 200
    assert client.get(f"/Patient/{pid}", headers={"If-None-Match": etag}).status_code == 200
    vread = client.get(f"/Patient/{pid}/_history/1", headers={"If-None-Match": etag})
    assert vread.status_code == 304


def test_summary_true_returns_summary_elements(client: httpx.Client) -> None:
    pid = _load(client, 1)[0]
    found = client.get("/Patient", params={"_id": pid, "_summary": "true"}).json()
    read = client.get(f"/Patient/{pid}", params={"_summary": "true"}).json()
    for patient in (found["entry"][0]["resource"], read):
        assert "text" not in patient and "communication" not in patient  # not summary
        assert patient["name"] and patient["gender"] == "female" and patient["identifier"]
        assert any(t["code"] == "SUBSETTED" for t in patient["meta"]["tag"])


@pytest.mark.parametrize(
    "path,params",
    [
        ("/Patient", {"_count": "-1"}),
        ("/Patient", {"_offset": "-5"}),
        ("/Patient/_history", {"_count": "-1"}),
        ("/_history", {"_offset": "-1"}),
        ("/StructureDefinition", {"_count": "-1"}),
        ("/Task/$mwl-query", {"_count": "-1"}),
        ("/Task/$mwl-query", {"_offset": "-1"}),
    ],
)
def test_negative_paging_is_400(client: httpx.Client, path: str, params: dict[str, str]) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_search_limits_are_400_not_500(client: httpx.Client) -> None:
    long_value = "x" * 60_000
    r = client.get("/Patient", params={"family": long_value})
    assert r.status_code == 400 and str(MAX_VALUE_LENGTH) in r.text
    assert r.json()["issue"][0]["expression"] == ["family"]
    many = ",".join(f"M{i}" for i in range(5000))
    r = client.post(
        "/Patient/_search",
        content=f"identifier={many}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and str(MAX_OR_VALUES) in r.text
    at_limit = ",".join(f"M{i}" for i in range(MAX_OR_VALUES))
    assert client.get("/Patient", params={"identifier": at_limit}).status_code == 200


def test_database_text_never_reaches_the_client(client: httpx.Client, server: Runtime) -> None:
    pid = _load(client, 1)[0]
    path = server.settings.db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE resource RENAME TO resource_gone")
    r = client.get(f"/Patient/{pid}")
    assert r.status_code == 500
    text = r.text.lower()
    assert "sqlite" not in text and "no such table" not in text and "resource_gone" not in text
    assert r.json()["issue"][0]["diagnostics"] == "the database failed; nothing was changed"
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE worklist RENAME TO worklist_gone")
    web = server.settings.fhir_base.rsplit("/fhir", 1)[0] + "/dicomweb/workitems"
    r = client.get(web)
    assert r.status_code == 500 and "worklist" not in r.text and "sqlite" not in r.text.lower()
