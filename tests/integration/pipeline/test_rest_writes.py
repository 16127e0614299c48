"""Single-resource REST writes of order-graph resources go through the one order pipeline.

Both backends: a Task POSTed alone for a stored Requested Procedure gets its SPS ID and is found
by a real C-FIND; a Task that cannot be scheduled is stored with its ``businessStatus`` and the
answer carries the warning (OperationOutcome, or the ``X-FHIRMWL-Warnings`` count); a
ServiceRequest PUT that changes the requested procedure code changes the worklist item, and one
that takes its step off the worklist is said and marked (and cleared when put back); REST
semantics (Location, ETag, If-Match → 412, conditional create) stay as they were. An order
created one resource at a time (the order, then its procedure) gets its accession number, RP ID,
study and catalogue step and is found by C-FIND.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from fhirmwl.runtime import Runtime
from fhirmwl.services.orders import ids
from tests.conftest import running_broker
from tests.integration.orders.conftest import CATALOGUE, order_bundle
from tests.integration.pipeline.conftest import client, worklist_items
from tests.integration.pipeline.orders import LOCAL, create_order_bundle
from tests.integration.pipeline.test_one_pipeline import SCHEDULABILITY, _nameless_order

OC = {"Prefer": "return=OperationOutcome"}
REPR = {"Prefer": "return=representation"}


@pytest.fixture
def dicom_broker(db_url: str) -> Iterator[Runtime]:
    with running_broker(db_url, dicom=True) as runtime:
        yield runtime


def _order(http: httpx.Client, bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Place ``bundle`` as a transaction; the stored ISR, RP and Task by role."""
    answer = http.post("/", json=bundle)
    assert answer.status_code == 200, answer.text
    out: dict[str, dict[str, Any]] = {}
    for entry in answer.json()["entry"]:
        rtype, res_id = entry["response"]["location"].split("/")[:2]
        if rtype in ("ServiceRequest", "Task"):
            res = http.get(f"/{rtype}/{res_id}").json()
            role = "rp" if res.get("basedOn") and rtype == "ServiceRequest" else rtype
            out["isr" if role == "ServiceRequest" else role] = res
    return out


def _second_step(stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A new step for the stored RP, without what the broker assigns (SPS ID, subject)."""
    task = copy.deepcopy(stored["Task"])
    for key in ("id", "meta", "identifier", "for", "businessStatus"):
        task.pop(key, None)
    task["basedOn"] = [{"reference": f"ServiceRequest/{stored['rp']['id']}"}]
    task["requestedPeriod"] = {"start": "2025-01-02T10:00:00+00:00"}
    return task


def _sps_id(task: dict[str, Any]) -> str:
    (value,) = [i["value"] for i in task["identifier"] if i["type"]["coding"][0]["code"] == "SPSID"]
    return str(value)


def _c_find(port: int, accession: str) -> list[Dataset]:
    query = Dataset()
    query.AccessionNumber = accession
    query.PatientName = ""
    sps = Dataset()
    sps.ScheduledProcedureStepID = ""
    sps.ScheduledProcedureStepStartDate = ""
    query.ScheduledProcedureStepSequence = [sps]
    ae = AE(ae_title="RESTW")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    assert assoc.is_established
    try:
        found = [
            ds
            for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
            if status is not None and status.Status in (0xFF00, 0xFF01) and ds is not None
        ]
    finally:
        assoc.release()
    return found


def test_task_posted_alone_gets_its_sps_id_and_reaches_the_worklist(
    dicom_broker: Runtime,
) -> None:
    with client(dicom_broker) as http:
        stored = _order(http, create_order_bundle("RW1"))
        created = http.post("/Task", json=_second_step(stored), headers=REPR)
        assert created.status_code == 201, created.text
        task = created.json()
        assert created.headers["location"].endswith(f"/Task/{task['id']}/_history/1")
        assert created.headers["etag"] == 'W/"1"'
        assert "x-fhirmwl-warnings" not in created.headers
    first = _sps_id(stored["Task"])
    assert _sps_id(task) == first[:-1] + "2"  # the next step of the same Requested Procedure
    assert task["for"] == stored["rp"]["subject"]  # completed from the Requested Procedure
    assert "businessStatus" not in task
    accession = stored["isr"]["identifier"][-1]["value"]
    found = _c_find(dicom_broker.settings.dicom_port, accession)
    steps = sorted(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for ds in found)
    assert steps == sorted([first, _sps_id(task)])


def test_task_not_schedulable_is_stored_marked_and_the_answer_warns(
    lenient_broker: Runtime,
) -> None:
    with client(lenient_broker) as http:
        stored = _order(http, _nameless_order())
        answer = http.post("/Task", json=_second_step(stored), headers=OC)
        assert answer.status_code == 201, answer.text
        issues = answer.json()["issue"]
        location = answer.headers["location"]
        task_id = location.split("/Task/")[1].split("/")[0]
        marked = http.get("/Task", params={"business-status": SCHEDULABILITY}).json()
        # Prefer: return=representation: the stored Task and the number of warnings
        again = http.put(f"/Task/{task_id}", json=http.get(f"/Task/{task_id}").json(), headers=REPR)
    assert [i["severity"] for i in issues] == ["information", "warning"]
    assert f"Task/{task_id} is stored but not on the worklist" in issues[1]["diagnostics"]
    assert "missing Patient's Name" in issues[1]["diagnostics"]
    assert issues[1]["expression"] == ["Task.businessStatus"]
    assert location.endswith("/_history/2")  # written, then marked in the same transaction
    assert task_id in {e["resource"]["id"] for e in marked["entry"]}
    assert again.status_code == 200, again.text
    assert again.headers["x-fhirmwl-warnings"] == "1"
    assert again.json()["businessStatus"]["text"] == "missing Patient's Name"
    assert worklist_items(lenient_broker) == []


def test_service_request_put_changes_the_worklist_item(broker: Runtime) -> None:
    with client(broker) as http:
        stored = _order(http, create_order_bundle("RW2"))
        rp = stored["rp"]
        (before,) = worklist_items(broker)
        rp["code"] = {"concept": {"coding": [{"system": LOCAL, "code": "CTHEAD"}], "text": "CT"}}
        stale = http.put(f"/ServiceRequest/{rp['id']}", json=rp, headers={"If-Match": 'W/"9"'})
        etag = http.get(f"/ServiceRequest/{rp['id']}").headers["etag"]
        changed = http.put(f"/ServiceRequest/{rp['id']}", json=rp, headers={"If-Match": etag, **OC})
    assert stale.status_code == 412, stale.text
    assert changed.status_code == 200, changed.text
    assert [i["severity"] for i in changed.json()["issue"]] == ["information"]
    assert changed.headers["etag"] == 'W/"2"'
    (after,) = worklist_items(broker)
    code = after["00321064"]["Value"][0]["00080100"]["Value"]
    assert before["00321064"]["Value"][0]["00080100"]["Value"] == ["MRHEAD"]
    assert code == ["CTHEAD"]
    assert after["00321060"]["Value"] == ["CT"]


def test_conditional_create_of_a_step_runs_once(broker: Runtime) -> None:
    with client(broker) as http:
        stored = _order(http, create_order_bundle("RW3"))
        task = _second_step(stored)
        task["identifier"] = [{"system": "urn:example:ris-step", "value": "RW3-2"}]
        cond = {"If-None-Exist": "identifier=urn:example:ris-step|RW3-2"}
        first = http.post("/Task", json=task, headers=cond)
        second = http.post("/Task", json=task, headers=cond)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["etag"] == first.headers["etag"]
    assert len(worklist_items(broker)) == 2


def test_service_request_put_that_unschedules_its_step_is_said(lenient_broker: Runtime) -> None:
    with client(lenient_broker) as http:
        stored = _order(http, create_order_bundle("RW4"))
        rp = stored["rp"]
        identifiers = rp.pop("identifier")
        dropped = http.put(f"/ServiceRequest/{rp['id']}", json=rp, headers=OC)
        marked = http.get(f"/Task/{stored['Task']['id']}").json()
        rp["identifier"] = identifiers
        restored = http.put(f"/ServiceRequest/{rp['id']}", json=rp, headers=OC)
        cleared = http.get(f"/Task/{stored['Task']['id']}").json()
    assert dropped.status_code == 200, dropped.text
    warning = dropped.json()["issue"][1]
    assert warning["severity"] == "warning"
    assert warning["diagnostics"].endswith("not on the worklist: missing Requested Procedure ID")
    assert marked["businessStatus"]["text"] == "missing Requested Procedure ID"
    assert [i["severity"] for i in restored.json()["issue"]] == ["information"]
    assert "businessStatus" not in cleared
    assert len(worklist_items(lenient_broker)) == 1


@pytest.fixture
def catalogue_broker(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE)
    with running_broker(db_url, dicom=True, catalogue=str(path)) as runtime:
        yield runtime


def _identifier(resource: dict[str, Any], code: str) -> str:
    (value,) = [
        i["value"]
        for i in resource.get("identifier") or []
        if any(c.get("code") == code for c in (i.get("type") or {}).get("coding") or [])
    ]
    return str(value)


def _lone_order(
    http: httpx.Client, subject: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST the guide example's order alone; the stored order, and a Requested Procedure for it
    as a client would post it alone (without the encounter and the RP ID the broker assigns)."""
    isr, rp = [copy.deepcopy(e["resource"]) for e in order_bundle()["entry"][:2]]
    isr["subject"] = subject
    made = http.post("/ServiceRequest", json=isr, headers=REPR)
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    rp.update(subject=subject, basedOn=[{"reference": f"ServiceRequest/{order['id']}"}])
    rp.pop("encounter")
    rp.pop("identifier")  # empty in the fixture: the broker assigns it
    return order, rp


def test_an_order_built_one_resource_at_a_time_reaches_the_worklist(
    catalogue_broker: Runtime,
) -> None:
    """A FHIR client that creates the order, then its procedure, one POST each (as fhirpy does),
    gets what a whole-graph transaction gets: accession number, RP ID, study, catalogue step."""
    entries = {e["resource"]["resourceType"]: e["resource"] for e in order_bundle()["entry"]}
    with client(catalogue_broker) as http:
        patient = http.post("/Patient", json=entries["Patient"], headers=REPR)
        assert patient.status_code == 201, patient.text
        order, rp = _lone_order(http, {"reference": f"Patient/{patient.json()['id']}"})
        accession = _identifier(order, "ACSN")
        made = http.post("/ServiceRequest", json=rp, headers=REPR)
        assert made.status_code == 201, made.text
        procedure = made.json()
        assert "x-fhirmwl-warnings" not in made.headers
        based_on = {"based-on": f"ServiceRequest/{procedure['id']}"}
        studies = http.get("/ImagingStudy", params=based_on)
        tasks = http.get("/Task", params=based_on)
        # Updating the stored order does not assign a second accession number.
        isr_again = {k: v for k, v in order.items() if k != "meta"}
        again = http.put(f"/ServiceRequest/{order['id']}", json=isr_again, headers=REPR)
        assert again.status_code == 200, again.text
    assert _identifier(procedure, "RPID") == ids.rp_id(accession, 1)
    assert [e["resource"]["status"] for e in studies.json().get("entry", [])] == ["registered"]
    (task,) = [e["resource"] for e in tasks.json()["entry"]]
    assert _sps_id(task) == ids.sps_id(ids.rp_id(accession, 1), 1)
    assert _identifier(again.json(), "ACSN") == accession
    found = _c_find(catalogue_broker.settings.dicom_port, accession)
    assert [ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for ds in found] == [
        _sps_id(task)
    ]
    assert found[0].AccessionNumber == accession


def test_a_plain_service_request_posted_alone_gets_no_accession(broker: Runtime) -> None:
    """Only imaging orders (the guide's profile or the imaging category) are completed."""
    lab = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"concept": {"text": "Full blood count"}},
        "subject": {"display": "Jane Doe"},
    }
    with client(broker) as http:
        made = http.post("/ServiceRequest", json=lab, headers=REPR)
    assert made.status_code == 201, made.text
    assert "identifier" not in made.json()


def test_batch_entries_take_the_order_pipeline(dicom_broker: Runtime) -> None:
    """A batch entry is completed and checked as the same REST write would be."""
    isr = order_bundle()["entry"][0]["resource"]
    isr["subject"] = {"display": "Jane Doe"}
    with client(dicom_broker) as http:
        stored = _order(http, create_order_bundle("RW9"))
        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": isr, "request": {"method": "POST", "url": "ServiceRequest"}},
                {"resource": _second_step(stored), "request": {"method": "POST", "url": "Task"}},
            ],
        }
        answer = http.post("/", json=batch, headers=REPR)
        assert answer.status_code == 200, answer.text
        entries = answer.json()["entry"]
        assert [e["response"]["status"][:3] for e in entries] == ["201", "201"]
        order = http.get("/" + entries[0]["response"]["location"].rsplit("/_history", 1)[0])
        task = http.get("/" + entries[1]["response"]["location"].rsplit("/_history", 1)[0])
    assert _identifier(order.json(), "ACSN")
    first = _sps_id(stored["Task"])
    assert _sps_id(task.json()) == first[:-1] + "2"
    accession = stored["isr"]["identifier"][-1]["value"]
    found = _c_find(dicom_broker.settings.dicom_port, accession)
    assert len(found) == 2


def test_conditional_create_of_an_order_that_matches_draws_no_accession(broker: Runtime) -> None:
    """A POST with If-None-Exist that finds the stored order writes nothing and so assigns
    nothing: the next order gets the next accession number (no gap)."""
    isr = order_bundle()["entry"][0]["resource"]
    isr["subject"] = {"display": "Jane Doe"}
    placer = isr["identifier"][0]
    cond = {**REPR, "If-None-Exist": f"identifier={placer['system']}|{placer['value']}"}
    other = copy.deepcopy(isr)
    other["identifier"][0]["value"] = "P-other"
    with client(broker) as http:
        first = http.post("/ServiceRequest", json=isr, headers=cond)
        assert first.status_code == 201, first.text
        again = http.post("/ServiceRequest", json=isr, headers=cond)
        assert again.status_code == 200, again.text
        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": isr,
                    "request": {
                        "method": "POST",
                        "url": "ServiceRequest",
                        "ifNoneExist": cond["If-None-Exist"],
                    },
                }
            ],
        }
        answer = http.post("/", json=batch, headers=REPR)
        assert answer.status_code == 200, answer.text
        assert answer.json()["entry"][0]["response"]["status"][:3] == "200"
        second = http.post("/ServiceRequest", json=other, headers=REPR)
        assert second.status_code == 201, second.text
    assert _identifier(again.json(), "ACSN") == _identifier(first.json(), "ACSN")
    assert int(_identifier(second.json(), "ACSN")) == int(_identifier(first.json(), "ACSN")) + 1


def test_a_procedure_added_after_one_was_deleted_gets_a_new_rp_id(broker: Runtime) -> None:
    """The running number of a Requested Procedure posted alone follows the highest one of the
    order's procedures, not their count: a deleted procedure leaves its number taken."""
    with client(broker) as http:
        order, rp = _lone_order(http, {"display": "Jane Doe"})
        procedures = []
        for _ in range(2):
            posted = http.post("/ServiceRequest", json=rp, headers=REPR)
            assert posted.status_code == 201, posted.text
            procedures.append(posted.json())
        gone = http.delete(f"/ServiceRequest/{procedures[0]['id']}")
        assert gone.status_code in (200, 204), gone.text
        third = http.post("/ServiceRequest", json=rp, headers=REPR)
    assert third.status_code == 201, third.text
    accession = _identifier(order, "ACSN")
    assert [_identifier(p, "RPID") for p in procedures] == [
        ids.rp_id(accession, 1),
        ids.rp_id(accession, 2),
    ]
    assert _identifier(third.json(), "RPID") == ids.rp_id(accession, 3)


def test_two_procedures_added_in_one_transaction_get_two_rp_ids(broker: Runtime) -> None:
    """A transaction adding two Requested Procedures to a stored order numbers them apart."""
    with client(broker) as http:
        order, rp = _lone_order(http, {"display": "Jane Doe"})
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": rp, "request": {"method": "POST", "url": "ServiceRequest"}},
                {"resource": rp, "request": {"method": "POST", "url": "ServiceRequest"}},
            ],
        }
        answer = http.post("/", json=bundle, headers=REPR)
        assert answer.status_code == 200, answer.text
        locations = [e["response"]["location"] for e in answer.json()["entry"]]
        procedures = [
            http.get("/" + loc.rsplit("/_history", 1)[0]).json()
            for loc in locations
            if loc.startswith("ServiceRequest/")
        ]
    accession = _identifier(order, "ACSN")
    assert sorted(_identifier(p, "RPID") for p in procedures) == [
        ids.rp_id(accession, 1),
        ids.rp_id(accession, 2),
    ]


def test_procedures_added_concurrently_to_one_order_get_distinct_rp_ids(broker: Runtime) -> None:
    """Eight clients add a procedure to one order at once (PostgreSQL: concurrently): the
    order's row lock keeps their RP IDs apart."""
    with client(broker) as http:
        order, rp = _lone_order(http, {"display": "Jane Doe"})
    results: list[str] = []

    def post() -> None:
        with client(broker) as http:
            made = http.post("/ServiceRequest", json=rp, headers=REPR)
            assert made.status_code == 201, made.text
            results.append(_identifier(made.json(), "RPID"))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert len(set(results)) == 8, sorted(results)
