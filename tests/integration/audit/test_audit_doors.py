"""Every door leaves its AuditEvent: HTTP (httpx), HL7 v2 (MLLP over TCP), DICOM (pynetdicom).

Both backends. Change events are checked right after the answer (they are written in the
change's own transaction); read and query events within a short wait (they are queued).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

import httpx
import pytest
from fhir.resources.auditevent import AuditEvent
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.mllp import send_messages
from tests.conftest import running_broker
from tests.integration.mllp_service.messages import orm


def _events(
    http: httpx.Client,
    query: str,
    want: int = 1,
    wait: float = 10,
    where: Callable[[dict[str, Any]], bool] = lambda e: True,
) -> list[Any]:
    """Events matching ``query`` (and ``where``), waiting for at least ``want`` of them."""
    deadline = time.monotonic() + wait
    while True:
        bundle = http.get(f"/fhir/AuditEvent?{query}").json()
        found = [e["resource"] for e in bundle.get("entry") or [] if where(e["resource"])]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _base(rt: Any) -> str:
    return f"http://127.0.0.1:{rt.settings.http_port}"


def _detail(event: dict[str, Any], key: str) -> str:
    for entity in event.get("entity") or []:
        for d in entity.get("detail") or []:
            if d["type"]["text"] == key:
                return str(d["valueString"])
    return ""


def test_http_changes_reads_and_refusals_are_audited(db_url: str) -> None:
    with running_broker(db_url) as rt, httpx.Client(base_url=_base(rt)) as http:
        created = http.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "name": [{"family": "Audit"}], "gender": "male"},
        )
        assert created.status_code == 201
        pid = created.json()["id"]
        # The change event is in the create's own transaction: there at once.
        now = _events(http, f"patient={pid}&action=C", wait=0)
        assert len(now) == 1
        change = now[0]
        assert change["code"]["coding"][0]["code"] == "create"
        assert change["category"][0]["coding"][0]["code"] == "rest"
        assert change["outcome"]["code"]["code"] == "0"
        assert change["agent"][0]["networkString"].startswith("127.0.0.1:")
        AuditEvent.model_validate(change)  # valid FHIR R5

        assert http.get(f"/fhir/Patient/{pid}").status_code == 200
        reads = _events(http, f"patient={pid}&subtype=read")
        assert reads and reads[0]["action"] == "R"
        assert http.get("/fhir/Task?status=requested").status_code == 200
        task_search = _events(
            http, "subtype=search-type", where=lambda e: _detail(e, "path") == "/fhir/Task"
        )[0]
        query = next(e for e in task_search["entity"] if "query" in e)["query"]
        assert base64.b64decode(query) == b"status=requested"
        assert http.get("/fhir/Patient/nope").status_code == 404
        assert _events(
            http, "outcome=4", where=lambda e: _detail(e, "path") == "/fhir/Patient/nope"
        )

        event_id = change["id"]
        for method in ("PUT", "DELETE", "PATCH"):
            answer = http.request(method, f"/fhir/AuditEvent/{event_id}", json=change)
            assert answer.status_code == 405
            assert answer.json()["resourceType"] == "OperationOutcome"
        assert http.post("/fhir/AuditEvent", json=change).status_code == 405
        alerts = _events(http, "code=110130", want=4)
        assert len(alerts) >= 4  # each refused change attempt is itself audited
        assert http.get(f"/fhir/AuditEvent/{event_id}").json() == {
            **change,
            "meta": change["meta"],
        }
        assert http.get("/fhir/AuditEvent?date=ge2020-01-01&_count=1").json()["entry"]
        bad = http.get("/fhir/AuditEvent?bogus=1")
        assert bad.status_code == 400


def test_hl7_messages_are_audited_with_sender_and_ack(db_url: str) -> None:
    with running_broker(db_url, mllp=True) as rt:
        port = rt.settings.mllp_port
        ok = send_messages("127.0.0.1", port, [orm("NW", "AUD1", "AUDMSG1")], timeout=30)[0]
        assert b"MSA|AA" in ok
        bad = orm("NW", "AUD2", "AUDMSG2").replace(b"PID|||PAT1^^^HOSP^MR", b"PID|||")
        refused = send_messages("127.0.0.1", port, [bad], timeout=30)[0]
        assert b"MSA|AA" not in refused
        with httpx.Client(base_url=f"http://127.0.0.1:{rt.settings.http_port}") as http:
            applied = _events(http, "code=110109&outcome=0", wait=0)
            assert len(applied) == 1  # written with the message's changes
            event = applied[0]
            assert event["agent"][0]["who"]["identifier"]["value"] == "RIS^HOSP"
            assert _detail(event, "msh10") == "AUDMSG1"
            assert _detail(event, "message_type") == "ORM^O01"
            patient = event["patient"]["reference"]
            assert http.get(f"/fhir/{patient}").json()["identifier"][0]["value"] == "PAT1"
            failures = _events(http, "code=110109&outcome=4,8")
            assert [_detail(e, "msh10") for e in failures] == ["AUDMSG2"]
            assert _detail(failures[0], "ack") in ("AE", "AR")


def _find(port: int, calling: str) -> tuple[int, bool]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    if not assoc.is_established:
        return 0, False
    ds = Dataset()
    ds.PatientName = ""
    ds.AccessionNumber = ""
    items = sum(
        1
        for status, _ in assoc.send_c_find(ds, ModalityWorklistInformationFind)
        if status and status.Status in (0xFF00, 0xFF01)
    )
    assoc.release()
    return items, True


@pytest.mark.parametrize("backend", ["sqlite"])
def test_dicom_queries_and_rejections_are_audited(tmp_path: Any, backend: str) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with running_broker(db, dicom=True, mllp=True, dicom_allowed_aets="CT01") as rt:
        ack = send_messages("127.0.0.1", rt.settings.mllp_port, [orm("NW", "AUD3", "AUD3")])[0]
        assert b"MSA|AA" in ack
        assert _find(rt.settings.dicom_port, "CT01") == (1, True)
        assert _find(rt.settings.dicom_port, "INTRUDER")[1] is False
        with httpx.Client(base_url=f"http://127.0.0.1:{rt.settings.http_port}") as http:
            queries = _events(http, "code=110112")
            assert len(queries) == 1
            query = queries[0]
            assert query["agent"][0]["who"]["identifier"]["value"] == "CT01"
            assert _detail(query, "items") == "1" and _detail(query, "called_ae") == "FHIRMWL"
            raw = next(e for e in query["entity"] if "query" in e)["query"]
            identifier = read_dataset(BytesIO(base64.b64decode(raw)), True, True)
            assert "PatientName" in identifier and "AccessionNumber" in identifier
            rejected = _events(http, "code=110113")
            assert rejected and rejected[0]["agent"][0]["who"]["identifier"]["value"] == "INTRUDER"
            assert rejected[0]["outcome"]["code"]["code"] == "4"
    # Service start and stop are recorded too (the stop after the listeners closed).
    with running_broker(db) as rt2, httpx.Client(base_url=_base(rt2)) as http:
        codes = [e["code"]["coding"][0]["code"] for e in _events(http, "code=110100", 3)]
    assert codes.count("110120") >= 2 and codes.count("110121") >= 1
