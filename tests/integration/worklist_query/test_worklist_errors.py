"""Bad input on the HTTP worklist forms: 400 with an OperationOutcome (FHIR) or a reason
(DICOMweb) naming the parameter; lenient handling ignores unknown inputs, strict refuses them."""

from __future__ import annotations

import httpx
import pytest

from fhirmwl.runtime import Runtime

OP = "/Task/$mwl-query"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"ScheduledProcedureStepStartDate": "2024-03-01"}, "ScheduledProcedureStepStartDate"),
        (
            {"ScheduledProcedureStepStartDate": "20240301-20240302-20240303"},
            "ScheduledProcedureStepStartDate",
        ),
        ({"ScheduledProcedureStepStartTime": "25h"}, "ScheduledProcedureStepStartTime"),
        ({"Modality": "CT-MR"}, "Modality"),
        ({"StudyInstanceUID": "1.2.abc"}, "StudyInstanceUID"),
        ({"PatientID": "A\\B"}, "PatientID"),
        ({"ScheduledProcedureStepSequence": "CT"}, "ScheduledProcedureStepSequence"),
        ({"_count": "many"}, "_count"),
    ],
)
def test_mwl_query_bad_values_are_400_naming_the_parameter(
    http: httpx.Client, params: dict[str, str], named: str
) -> None:
    r = http.get(OP, params=params)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["severity"] == "error"
    assert named in issue["diagnostics"]
    assert issue["expression"] == [named]


def test_unknown_parameter_lenient_is_ignored_strict_is_400(http: httpx.Client) -> None:
    params = {"NoSuchKeyword": "x", "ScheduledProcedureStepID": "SPS002"}
    lenient = http.get(OP, params=params)
    assert lenient.status_code == 200
    assert "NoSuchKeyword" not in lenient.json()["link"][0]["url"]
    strict = http.get(OP, params=params, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["NoSuchKeyword"]


def test_mwl_query_accepts_parameters_resource(http: httpx.Client) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "ScheduledStationAETitle", "valueString": "US01"},
            {"name": "ScheduledProcedureStepStartDate", "valueString": "20240303"},
        ],
    }
    r = http.post(OP, json=body, headers={"Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text
    items = r.json()
    assert items and all(i["00400100"]["Value"][0]["00400001"]["Value"] == ["US01"] for i in items)


def _web(broker: Runtime) -> str:
    return broker.settings.fhir_base.rsplit("/fhir", 1)[0] + "/dicomweb"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("NoSuchKeyword=1", "NoSuchKeyword"),
        ("00400100.00400002=2024", "00400100.00400002"),
        ("limit=-1", "limit"),
        ("PatientID=A&PatientID=B", "PatientID"),
        ("includefield=Bogus", "Bogus"),
    ],
)
def test_dicomweb_bad_parameters_are_400_with_a_reason(
    broker: Runtime, http: httpx.Client, query: str, reason: str
) -> None:
    for resource in ("modality-scheduled-procedure-steps", "workitems"):
        r = http.get(f"{_web(broker)}/{resource}?{query}")
        assert r.status_code == 400, (resource, r.text)
        assert reason in r.text


def test_dicomweb_paging_and_unsupported_fuzzy_matching(
    broker: Runtime, http: httpx.Client
) -> None:
    url = f"{_web(broker)}/modality-scheduled-procedure-steps"
    first = http.get(
        url, params={"00400100.00400001": "CT01", "limit": "10", "fuzzymatching": "true"}
    )
    assert first.status_code == 206
    assert "fuzzymatching parameter is not supported" in first.headers["warning"]
    rest = http.get(url, params={"00400100.00400001": "CT01", "limit": "10", "offset": "10"})
    assert rest.status_code == 200
    ids = [i["00400100"]["Value"][0]["00400009"]["Value"][0] for i in first.json() + rest.json()]
    assert len(ids) == len(set(ids)) == 15
    assert http.get(url, params={"PatientID": "NOPE"}).status_code == 204
