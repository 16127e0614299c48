"""UPS-RS Change Workitem State and Request Cancellation over HTTP (httpx) on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid

from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import order_bundle

STATE = "00741000"


@pytest.fixture
def broker(db_url: str, catalogue_file: Path) -> Iterator[Runtime]:
    with running_broker(db_url, catalogue=str(catalogue_file)) as runtime:
        yield runtime


@pytest.fixture
def web(broker: Runtime) -> Iterator[httpx.Client]:
    base = broker.settings.fhir_base.rsplit("/fhir", 1)[0]
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


def _order(web: httpx.Client) -> str:
    r = web.post("/fhir/$create-order", json=order_bundle())
    assert r.status_code == 201, r.text
    return str(r.headers["X-Order-Id"])


def _workitems(web: httpx.Client) -> list[dict[str, Any]]:
    r = web.get("/dicomweb/workitems")
    return list(r.json()) if r.status_code == 200 else []


def _put(web: httpx.Client, uid: str, state: str, txuid: str | None) -> httpx.Response:
    ds: dict[str, Any] = {STATE: {"vr": "CS", "Value": [state]}}
    if txuid is not None:
        ds["00081195"] = {"vr": "UI", "Value": [txuid]}
    return web.put(
        f"/dicomweb/workitems/{uid}/state",
        content=json.dumps([ds]),
        headers={"Content-Type": "application/dicom+json"},
    )


def _task_status(web: httpx.Client) -> list[str]:
    return [e["resource"]["status"] for e in web.get("/fhir/Task").json()["entry"]]


def test_claim_and_complete(web: httpx.Client) -> None:
    _order(web)
    [item] = _workitems(web)
    uid = item["00080018"]["Value"][0]
    assert item[STATE]["Value"] == ["SCHEDULED"]
    txuid = generate_uid(prefix="2.25.")

    assert _put(web, uid, "COMPLETED", txuid).status_code == 409  # not claimed yet
    missing = _put(web, uid, "IN PROGRESS", None)
    assert missing.status_code == 400 and "missing" in missing.headers["Warning"]
    assert _put(web, uid, "IN PROGRESS", txuid).status_code == 200
    assert _task_status(web) == ["in-progress"]
    assert _workitems(web)[0][STATE]["Value"] == ["IN PROGRESS"]
    again = _put(web, uid, "IN PROGRESS", generate_uid(prefix="2.25."))
    assert again.status_code == 409 and "inconsistent" in again.headers["Warning"]

    wrong = _put(web, uid, "COMPLETED", generate_uid(prefix="2.25."))
    assert wrong.status_code == 409 and "incorrect" in wrong.headers["Warning"]
    assert _put(web, uid, "COMPLETED", txuid).status_code == 200
    assert _task_status(web) == ["completed"]
    assert _workitems(web) == []  # completed steps leave the worklist
    repeat = _put(web, uid, "COMPLETED", txuid)
    assert repeat.status_code == 200 and "already" in repeat.headers["Warning"]
    assert _put(web, uid, "CANCELED", txuid).status_code == 409


def test_cancel_request_and_bad_requests(web: httpx.Client) -> None:
    _order(web)
    _order(web)
    first, second = (w["00080018"]["Value"][0] for w in _workitems(web))
    reason = {"00741238": {"vr": "LT", "Value": ["patient left"]}}
    r = web.post(f"/dicomweb/workitems/{first}/cancelrequest", json=reason)
    assert r.status_code == 202
    tasks = web.get("/fhir/Task", params={"status": "cancelled"}).json()["entry"]
    assert tasks[0]["resource"]["statusReason"]["concept"]["text"] == "patient left"
    repeat = web.post(f"/dicomweb/workitems/{first}/cancelrequest")
    assert repeat.status_code == 202 and "already" in repeat.headers["Warning"]

    txuid = generate_uid(prefix="2.25.")
    assert _put(web, second, "IN PROGRESS", txuid).status_code == 200
    busy = web.post(f"/dicomweb/workitems/{second}/cancelrequest")
    assert busy.status_code == 409 and "performer" in busy.headers["Warning"]
    assert _put(web, second, "CANCELED", txuid).status_code == 200
    assert sorted(_task_status(web)) == ["cancelled", "cancelled"]

    unknown = generate_uid(prefix="2.25.")
    assert _put(web, unknown, "IN PROGRESS", txuid).status_code == 404
    assert web.post(f"/dicomweb/workitems/{unknown}/cancelrequest").status_code == 404
    bad = web.put(f"/dicomweb/workitems/{second}/state", content=b"{not json")
    assert bad.status_code == 400 and "JSON" in bad.headers["Warning"]
    assert _put(web, second, "SCHEDULED", txuid).status_code == 400
