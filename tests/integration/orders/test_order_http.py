"""End to end over HTTP: $create-order → $update-order → $cancel-order, bad input, status rules."""

from __future__ import annotations

from typing import Any

import httpx

from fhirmwl.fhir import model
from tests.integration.orders.conftest import order_bundle


def _of(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e.get("resource", {}).get("resourceType") == rtype
    ]


def _create(api: httpx.Client, bundle: dict[str, Any]) -> httpx.Response:
    return api.post(
        "/$create-order",
        json={"resourceType": "Parameters", "parameter": [{"name": "order", "resource": bundle}]},
    )


def test_create_update_cancel(api: httpx.Client) -> None:
    order = order_bundle()
    r = _create(api, order)
    assert r.status_code == 201, r.text
    created = r.json()
    isr = _of(created, "ServiceRequest")[0]
    acsn = model.identifier_of_type(isr, model.ACSN)
    assert acsn and acsn["value"]
    (task,) = _of(created, "Task")
    assert task["status"] == "requested"
    assert task["requestedPeriod"]["start"] == "2030-01-01T09:00:00Z"
    assert model.identifier_of_type(task, model.SPSID)
    (study,) = _of(created, "ImagingStudy")
    assert study["identifier"][0]["value"].startswith("urn:oid:2.25.")
    station = _of(created, "Device")[0]
    assert station["name"][0]["value"] in ("CT1", "CT2")

    again = api.post("/$create-order", json=order)  # bare Bundle, same placer number
    assert again.status_code == 200
    assert _of(again.json(), "ServiceRequest")[0]["id"] == isr["id"]

    moved = dict(
        task, requestedPeriod={"start": "2030-01-02T10:00:00Z", "end": "2030-01-02T10:30:00Z"}
    )
    upd = api.post(
        f"/ServiceRequest/{isr['id']}/$update-order",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": moved, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
            ],
        },
    )
    assert upd.status_code == 200, upd.text
    assert (
        api.get(f"/Task/{task['id']}").json()["requestedPeriod"]["start"] == "2030-01-02T10:00:00Z"
    )

    stale = api.post(
        f"/ServiceRequest/{isr['id']}/$update-order",
        json={"resourceType": "Bundle", "type": "transaction", "entry": []},
        headers={"If-Match": 'W/"1"', "Content-Type": "application/fhir+json"},
    )
    assert stale.status_code in (200, 412)

    c = api.post(
        f"/ServiceRequest/{isr['id']}/$cancel-order",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueCodeableConcept": {"text": "patient declined"}}],
        },
    )
    assert c.status_code == 200, c.text
    assert api.get(f"/Task/{task['id']}").json()["status"] == "cancelled"
    assert api.get(f"/ServiceRequest/{isr['id']}").json()["status"] == "revoked"
    assert api.post(f"/ServiceRequest/{isr['id']}/$cancel-order").status_code == 200
    refused = api.post(
        f"/ServiceRequest/{isr['id']}/$update-order",
        json={"resourceType": "Bundle", "type": "transaction", "entry": []},
    )
    assert refused.status_code == 409


def test_started_step_refuses_update_and_survives_cancel(api: httpx.Client) -> None:
    created = _create(api, order_bundle()).json()
    isr, (task,) = _of(created, "ServiceRequest")[0], _of(created, "Task")
    assert api.put(f"/Task/{task['id']}", json=dict(task, status="in-progress")).status_code == 200
    current = api.get(f"/Task/{task['id']}").json()
    moved = dict(current, requestedPeriod={"start": "2030-02-01T10:00:00Z"})
    r = api.post(
        f"/ServiceRequest/{isr['id']}/$update-order",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": moved, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
            ],
        },
    )
    assert r.status_code == 409
    assert "in-progress" in r.json()["issue"][0]["diagnostics"]
    c = api.post(f"/ServiceRequest/{isr['id']}/$cancel-order").json()
    outcome = c["parameter"][1]["resource"]
    assert any("in progress" in i["diagnostics"] for i in outcome["issue"])
    assert api.get(f"/Task/{task['id']}").json()["status"] == "in-progress"
    done = api.put(f"/Task/{task['id']}", json=dict(current, status="completed"))
    assert done.status_code == 200


def test_illegal_transition_lists_allowed(api: httpx.Client) -> None:
    created = _create(api, order_bundle()).json()
    (task,) = _of(created, "Task")
    r = api.put(f"/Task/{task['id']}", json=dict(task, status="completed"))
    assert r.status_code == 409
    text = r.json()["issue"][0]["diagnostics"]
    assert "requested cannot change to completed" in text and "in-progress" in text


def test_all_steps_completed_rolls_up(api: httpx.Client) -> None:
    created = _create(api, order_bundle()).json()
    isr, (task,) = _of(created, "ServiceRequest")[0], _of(created, "Task")
    api.put(f"/Task/{task['id']}", json=dict(task, status="in-progress"))
    task = api.get(f"/Task/{task['id']}").json()
    assert api.put(f"/Task/{task['id']}", json=dict(task, status="completed")).status_code == 200
    assert api.get(f"/ServiceRequest/{isr['id']}").json()["status"] == "completed"


def test_profile_errors_are_all_listed_and_nothing_stored(api: httpx.Client) -> None:
    order = order_bundle()
    order["entry"][0]["resource"]["intent"] = "proposal"  # ISR intent is fixed to order
    order["entry"][1]["resource"]["intent"] = "plan"  # so is the RP's
    r = _create(api, order)
    assert r.status_code == 422, r.text
    errors = [i for i in r.json()["issue"] if i["severity"] == "error"]
    assert len(errors) >= 2
    assert api.get("/ServiceRequest").json().get("total", 0) == 0
    assert api.get("/Task").json().get("total", 0) == 0


def test_unknown_procedure_code_names_code_and_catalogue(api: httpx.Client) -> None:
    order = order_bundle()
    order["entry"][1]["resource"]["code"]["concept"]["coding"][0]["code"] = "99999-9"
    r = _create(api, order)
    assert r.status_code == 422
    text = r.json()["issue"][0]["diagnostics"]
    assert "99999-9" in text and "catalogue.toml" in text
