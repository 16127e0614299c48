"""Every door goes through one order service, and the answer tells the truth (issue 10).

Both backends: an OMI^O23 and a ``$create-order`` for the same order give the same worklist item
apart from what the broker assigns; the guide's example order graph posted as a plain FHIR
transaction reaches the worklist; a step that is stored but cannot be scheduled is reported in
the same answer (ERR severity W / OperationOutcome warning) and searchable on the Task.
"""

from __future__ import annotations

import json
from typing import Any

from fhirmwl.runtime import Runtime
from tests.conftest import SHARED
from tests.integration.mllp_service.messages import msa
from tests.integration.pipeline.conftest import (
    client,
    err_segments,
    sender,
    worklist_items,
)
from tests.integration.pipeline.orders import create_order_bundle, omi

GUIDE_TRANSACTION = SHARED / "spec/ig-examples-transaction.json"
# What the broker assigns (and the placer number, which differs on purpose: the same placer
# number would make $create-order answer with the order the OMI created).
ASSIGNED = {
    "00080050",  # Accession Number
    "0020000D",  # Study Instance UID
    "00401001",  # Requested Procedure ID
    "00402016",  # Placer Order Number / Imaging Service Request
}
SPS_ASSIGNED = {"00400009"}  # Scheduled Procedure Step ID
SCHEDULABILITY = "urn:fhirmwl:schedulability|not-schedulable"


def _without_assigned(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in ASSIGNED}
    (sps,) = out.pop("00400100")["Value"]
    out["sps"] = {k: v for k, v in sps.items() if k not in SPS_ASSIGNED}
    return out


def test_omi_and_create_order_give_the_same_worklist_item(broker: Runtime) -> None:
    (ack,) = sender(broker)(omi("EQ1", "EQ-C1"))
    assert msa(ack) == ("AA", "")
    with client(broker) as http:
        created = http.post("/$create-order", json=create_order_bundle("EQ2"))
    assert created.status_code == 201, created.text
    via_v2, via_fhir = worklist_items(broker)
    assert _without_assigned(via_v2) == _without_assigned(via_fhir)
    # both doors assign identifiers by the same rule (accession counter, RP and SPS ids)
    accessions = sorted(i["00080050"]["Value"][0] for i in (via_v2, via_fhir))
    assert accessions == ["00000001", "00000002"]
    assert via_v2["00401001"]["Value"] == [f"{via_v2['00080050']['Value'][0]}.1"]


def test_guide_example_transaction_reaches_the_worklist(broker: Runtime) -> None:
    """Posted unedited, strict validation: completion links the example's study (based on the
    order only) to the one Requested Procedure, which the profile's basedOn slice asks for."""
    bundle = json.loads(GUIDE_TRANSACTION.read_text())
    with client(broker) as http:
        answer = http.post("/", json=bundle)
        assert answer.status_code == 200, answer.text
        tasks = http.get("/Task", params={"identifier": "RP12345.1"}).json()
        studies = http.get("/ImagingStudy").json()["entry"]
    (item,) = worklist_items(broker)
    assert item["00080050"]["Value"] == ["A12345"]
    (sps,) = item["00400100"]["Value"]
    assert sps["00400009"]["Value"] == ["RP12345.1"]  # SPS ID completed by the order service
    # the RP ID typed by text only and the study based on the order only are the sender's own
    assert item["00401001"]["Value"] == ["RP12345"]
    assert item["0020000D"]["Value"] == ["2.16.124.113543.1154777499.30246.19789.350343004"]
    assert len(studies) == 1
    assert [e["resource"]["resourceType"] for e in tasks["entry"]] == ["Task"]


def _nameless_order() -> dict[str, Any]:
    bundle = create_order_bundle("NS1")
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    del patient["resource"]["name"]
    patient["request"]["ifNoneExist"] = "identifier=urn:fhirmwl:issuer:HOSP|NONAME"
    patient["resource"]["identifier"][0]["value"] = "NONAME"
    return bundle


def test_stored_but_not_schedulable_is_said_and_searchable(lenient_broker: Runtime) -> None:
    with client(lenient_broker) as http:
        answer = http.post("/", json=_nameless_order())
        assert answer.status_code == 200, answer.text
        issues = answer.json()["issues"]["issue"]
        found = http.get("/Task", params={"business-status": SCHEDULABILITY}).json()
    assert [i["severity"] for i in issues] == ["warning"]
    assert "not on the worklist: missing Patient's Name" in issues[0]["diagnostics"]
    assert issues[0]["expression"] == ["Task.businessStatus"]
    (task,) = [e["resource"] for e in found["entry"]]
    assert task["businessStatus"]["text"] == "missing Patient's Name"
    assert worklist_items(lenient_broker) == []


def test_v2_order_not_schedulable_gets_aa_with_a_w_error(broker: Runtime) -> None:
    message = omi("NS2", "NS-C2").replace(b"DOE^JANE", b"")
    (ack,) = sender(broker)(message)
    assert msa(ack)[0] == "AA" and b"accepted with 1 warning" in ack
    (err,) = err_segments(ack)
    assert err[2] == "PID^1^5" and err[4] == "W"
    assert "missing Patient's Name" in err[8]
    with client(broker) as http:
        found = http.get("/Task", params={"business-status": SCHEDULABILITY}).json()
    assert len(found["entry"]) == 1 and worklist_items(broker) == []


def test_create_order_answer_names_replaced_values(broker: Runtime) -> None:
    bundle = create_order_bundle("RV1")
    task = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")
    task["input"][0]["valueCodeableConcept"]["coding"][0]["code"] = "XRAY"
    del task["requestedPeriod"]
    with client(broker) as http:
        created = http.post("/$create-order", json=bundle)
    assert created.status_code == 201, created.text
    outcome = created.json()["entry"][-1]["resource"]
    texts = [i["diagnostics"] for i in outcome["issue"] if i["severity"] == "warning"]
    assert any("'XRAY' is not a DICOM modality" in t and "OT used" in t for t in texts)
    assert any(t.startswith("scheduled start missing") for t in texts)
    (item,) = worklist_items(broker)
    assert item["00400100"]["Value"][0]["00080060"]["Value"] == ["OT"]


def test_plain_update_of_a_stored_procedure_adds_no_study_or_step(lenient_broker: Runtime) -> None:
    bundle = json.loads(GUIDE_TRANSACTION.read_text())
    with client(lenient_broker) as http:
        assert http.post("/", json=bundle).status_code == 200
        (rp,) = [
            e["resource"]
            for e in http.get("/ServiceRequest", params={"based-on:missing": "false"}).json()[
                "entry"
            ]
        ]
        rp["priority"] = "stat"
        update = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": rp, "request": {"method": "PUT", "url": f"ServiceRequest/{rp['id']}"}}
            ],
        }
        answer = http.post("/", json=update)
        assert answer.status_code == 200, answer.text
        counts = {
            rtype: len(http.get(f"/{rtype}").json().get("entry") or [])
            for rtype in ("ImagingStudy", "Task")
        }
    assert counts == {"ImagingStudy": 1, "Task": 1}
    assert "issues" not in answer.json()
