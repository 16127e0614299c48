"""Base R5 on every write, through real HTTP: refused with 422, an OperationOutcome in FHIR
wording and a FHIRPath to the element; ``$validate`` says the same; a transaction with one bad
entry commits nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ig_examples


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    issues = response.json()["issue"]
    return [(i["code"], i["expression"][0]) for i in issues if i["severity"] == "error"]


def test_bad_codes_are_refused_and_validate_agrees(client: httpx.Client) -> None:
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("Patient", {"resourceType": "Patient", "gender": "bogus"}, "Patient.gender"),
        ("Task", {"resourceType": "Task", "status": "foo", "intent": "plan"}, "Task.status"),
        ("Patient", {"resourceType": "Patient", "name": []}, "Patient.name"),
    ]
    for rtype, resource, expression in bad:
        r = client.post(f"/{rtype}", json=resource)
        assert r.status_code == 422, r.text
        assert len(_errors(r)) == 1 and _errors(r)[0][1] == expression
        assert "Input should" not in r.text and "Extra inputs" not in r.text
        checked = client.post(f"/{rtype}/$validate", json=resource)
        assert checked.status_code == 200
        assert _errors(checked) == _errors(r)
    assert client.get("/Patient").json()["entry"] == []


def test_long_id_on_update_is_refused(client: httpx.Client) -> None:
    r = client.put(f"/Patient/{'a' * 65}", json={"resourceType": "Patient", "active": True})
    assert r.status_code == 422 and _errors(r) == [("value", "Patient.id")]
    ok = client.put(f"/Patient/{'a' * 64}", json={"resourceType": "Patient", "active": True})
    assert ok.status_code == 201, ok.text


def test_transaction_with_bad_second_entry_commits_nothing(client: httpx.Client) -> None:
    bundle = ig_examples()
    bundle["entry"][1]["resource"]["status"] = "ongoing"  # not an R5 Encounter.status
    r = client.post("", json=bundle)
    assert r.status_code == 422, r.text
    assert _errors(r) == [("code-invalid", "Bundle.entry[1].resource.status")]
    assert r.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[1].resource.status")
    assert client.get("/Patient").json()["entry"] == []
    bundle = ig_examples()
    bundle["entry"][2]["resource"]["category"][0]["coding"][0]["code"] = ""
    r = client.post("", json=bundle)
    assert _errors(r) == [("structure", "Bundle.entry[2].resource.category[0].coding[0].code")]
    assert client.get("/Patient").json()["entry"] == []
