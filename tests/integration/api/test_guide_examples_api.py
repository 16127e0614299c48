"""The guide's examples, as published, through the HTTP API in strict mode: one by one, as one
transaction, through ``$validate`` and ``$create-order``, and onto the worklist."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ig_examples


def _rewrite(node: Any, ids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: ids.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, ids)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, ids) for v in node]
    return node


def test_examples_one_by_one(client: httpx.Client) -> None:
    ids: dict[str, str] = {}
    for entry in ig_examples()["entry"]:
        resource = _rewrite(entry["resource"], ids)
        rtype = resource["resourceType"]
        checked = client.post(f"/{rtype}/$validate", json=resource).json()
        assert [i for i in checked["issue"] if i["severity"] in ("error", "fatal")] == [], rtype
        created = client.post(f"/{rtype}", json=resource)
        assert created.status_code == 201, created.text
        ids[entry["fullUrl"]] = f"{rtype}/{created.json()['id']}"
    study = client.get(f"/{ids[ig_examples()['entry'][5]['fullUrl']]}").json()
    assert study["basedOn"] == [{"reference": ids[ig_examples()["entry"][2]["fullUrl"]]}]


def test_examples_as_one_transaction_and_validate(client: httpx.Client) -> None:
    bundle = ig_examples()
    checked = client.post("/Bundle/$validate", json=bundle).json()
    assert checked["issue"][0]["severity"] == "information", json.dumps(checked)
    r = client.post("", json=bundle)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["201 Created"] * 7


def _tasks(client: httpx.Client, **keys: str) -> list[dict[str, Any]]:
    found = client.get("/Task/$mwl-query", params=keys).json()
    return [e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Task"]


def test_create_order_puts_the_isr_based_study_on_the_worklist(client: httpx.Client) -> None:
    """The guide's ImagingStudy names the ISR only; the worklist still finds it (I-14), and the
    guide's text-typed Requested Procedure ID is kept."""
    r = client.post("/$create-order", json=ig_examples())
    assert r.status_code == 201, r.text
    studies = [e for e in r.json()["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    assert len(studies) == 1, "no second, generated study beside the guide's"
    uid = "2.16.124.113543.1154777499.30246.19789.350343004"
    assert len(_tasks(client, StudyInstanceUID=uid)) == 1
    assert len(_tasks(client, RequestedProcedureID="RP12345", AccessionNumber="A12345")) == 1
    assert _tasks(client, StudyInstanceUID="1.2.3") == []
