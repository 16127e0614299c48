"""The contract of the shared matcher: C-FIND, ``$mwl-query`` (Bundle and DICOM JSON), the FHIR
Task search and the DICOMweb MWL search return the same steps with the same attribute values.

One running ``Runtime`` (HTTP + DICOM on free loopback ports) is loaded with a generated worklist
through FHIR transactions; every case of ``wlq_queries.CASES`` then runs through every transport
and is also checked against an expectation computed from the generated data.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from wlq_queries import CASES, RETURN_KEYS, SPS, Case
from wlq_worklist import Step, c_find, steps

from fhirmwl.runtime import Runtime
from fhirmwl.worklist.jsoncodec import dataset_to_dict

SPS_TAG = "00400100"
SPS_ID_TAG = "00400009"
ALL_STEPS = steps()


def _keys(case: Case) -> dict[str, str]:
    return {**RETURN_KEYS, **case.keys}


def _identifier(keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    item = Dataset()
    for path, value in keys.items():
        target, keyword = (item, path.split(".")[1]) if path.startswith(SPS) else (ds, path)
        tag = tag_for_keyword(keyword)
        elem = DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)
        target.add(elem)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def _sps_id(item: dict[str, Any]) -> str:
    return str(item[SPS_TAG]["Value"][0][SPS_ID_TAG]["Value"][0])


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {_sps_id(i): {k: v for k, v in i.items() if k != "00080005"} for i in items}
    assert len(out) == len(items), "a step was returned twice"
    return out


def _restrict(item: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """``item`` limited to the attributes (and SPS item attributes) present in ``like``."""
    out = {k: item.get(k) for k in like}
    if SPS_TAG in like and out.get(SPS_TAG):
        inner = like[SPS_TAG]["Value"][0]
        out[SPS_TAG] = {
            "vr": "SQ",
            "Value": [{k: v for k, v in item[SPS_TAG]["Value"][0].items() if k in inner}],
        }
    return out


def _bare(path: str) -> str:
    return path.split(".", 1)[1] if path.startswith(SPS + ".") else path


def _tag_path(path: str) -> str:
    return ".".join(f"{tag_for_keyword(p):08X}" for p in path.split("."))


def _task_sps_ids(bundle: dict[str, Any]) -> set[str]:
    ids = set()
    for entry in bundle.get("entry", []):
        res = entry["resource"]
        if entry["search"]["mode"] == "match":
            assert res["resourceType"] == "Task"
            ids |= {i["value"] for i in res["identifier"] if i["value"].startswith("SPS")}
    return ids


def _check_values(found: dict[str, dict[str, Any]], by_sps: dict[str, Step]) -> None:
    for sps_id, item in found.items():
        step = by_sps[sps_id]
        assert item["00100020"]["Value"] == [step.patient_id]
        assert item["00080050"]["Value"] == [step.accession]
        assert item["00100010"]["Value"] == [{"Alphabetic": step.name}]
        sps = item[SPS_TAG]["Value"][0]
        assert sps["00400001"]["Value"] == [step.station]
        assert sps["00400002"]["Value"] == [step.date]
        assert sps["00400003"]["Value"] == [step.time]
        admission = item["00380010"].get("Value")
        assert admission == ([step.admission_id] if step.admission_id else None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transports_agree(case: Case, broker: Runtime, http: httpx.Client) -> None:
    keys = _keys(case)
    expected = {s.sps_id for s in ALL_STEPS if case.expect(s)}

    cfind = _by_id(
        [dataset_to_dict(d) for d in c_find(broker.settings.dicom_port, _identifier(keys))]
    )
    assert set(cfind) == expected
    _check_values(cfind, {s.sps_id: s for s in ALL_STEPS})

    params = {_bare(k): v for k, v in keys.items()} | {"_count": "1000"}
    dicom_json = {"Accept": "application/dicom+json"}
    r = http.get("/Task/$mwl-query", params=params | {"_elements": ""}, headers=dicom_json)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/dicom+json")
    assert _by_id(r.json()) == cfind  # restricted to the query's keys: C-FIND's answer
    r = http.get("/Task/$mwl-query", params=params, headers=dicom_json)
    whole = _by_id(r.json())  # by default the whole item, C-FIND's keys among them
    assert {k: _restrict(v, cfind[k]) for k, v in whole.items()} == cfind
    assert all("00080050" in i and "00100010" in i for i in whole.values())

    r = http.post("/Task/$mwl-query", data=params)
    assert r.status_code == 200, r.text
    assert _task_sps_ids(r.json()) == expected

    base = broker.settings.fhir_base.rsplit("/fhir", 1)[0]
    web_params = {_tag_path(k): v for k, v in case.keys.items()} | {"includefield": "AdmissionID"}
    r = http.get(f"{base}/dicomweb/modality-scheduled-procedure-steps", params=web_params)
    if not expected:
        assert r.status_code == 204
    else:
        assert r.status_code == 200, r.text
        web = _by_id(r.json())
        assert {k: _restrict(v, cfind[k]) for k, v in web.items()} == cfind

    if case.fhir is not None:
        r = http.get("/Task", params=[*case.fhir, ("_count", "1000")])
        assert r.status_code == 200, r.text
        assert _task_sps_ids(r.json()) == expected


def test_mwl_query_bundle_carries_the_step_context(http: httpx.Client) -> None:
    r = http.get("/Task/$mwl-query", params={"ScheduledProcedureStepID": "SPS001"})
    assert r.status_code == 200, r.text
    kinds = sorted(e["resource"]["resourceType"] for e in r.json()["entry"])
    assert kinds == [
        "Device",
        "Encounter",
        "ImagingStudy",
        "Patient",
        "ServiceRequest",
        "ServiceRequest",
        "Task",
    ]


def test_mwl_query_pages(http: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = "/Task/$mwl-query?ScheduledStationAETitle=CT01&_count=4"
    while url:
        bundle = http.get(url).json()
        seen += sorted(_task_sps_ids(bundle))
        url = next((lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None)
    expected = sorted(s.sps_id for s in ALL_STEPS if s.station == "CT01")
    assert sorted(seen) == expected and len(seen) == len(expected)


def test_workitems_search_matches_the_same_steps(broker: Runtime, http: httpx.Client) -> None:
    base = broker.settings.fhir_base.rsplit("/fhir", 1)[0]
    params = {
        "ScheduledStationNameCodeSequence.CodeValue": "MR01",
        "ScheduledProcedureStepStartDateTime": "20240302000000-20240302235959",
    }
    r = http.get(f"{base}/dicomweb/workitems", params=params)
    assert r.status_code == 200, r.text
    found = sorted(i["0040A370"]["Value"][0]["00080050"]["Value"][0] for i in r.json())
    expected = sorted(
        s.accession for s in ALL_STEPS if s.station == "MR01" and s.date == "20240302"
    )
    assert found == expected and found
    assert {i["00741000"]["Value"][0] for i in r.json()} == {"SCHEDULED"}


def test_http_forms_return_whole_items_by_default(broker: Runtime, http: httpx.Client) -> None:
    """Without ``includefield``/``_elements`` both HTTP forms answer whole worklist items (the
    same ones); with them, C-FIND's projection."""
    base = broker.settings.fhir_base.rsplit("/fhir", 1)[0]
    web = http.get(f"{base}/dicomweb/modality-scheduled-procedure-steps", params={"Modality": "CT"})
    assert web.status_code == 200, web.text
    mwl = http.get(
        "/Task/$mwl-query",
        params={"Modality": "CT", "_count": "1000"},
        headers={"Accept": "application/dicom+json"},
    )
    assert _by_id(web.json()) == _by_id(mwl.json())
    for item in web.json():
        assert {"00080050", "00100010", "00100020", "0020000D", "00401001"} <= set(item)
        assert "00400020" in item[SPS_TAG]["Value"][0]  # SPS Status, never asked for
    narrowed = http.get(
        "/Task/$mwl-query",
        params={"Modality": "CT", "_elements": "PatientID"},
        headers={"Accept": "application/dicom+json"},
    )
    assert all(set(i) <= {"00080005", "00100020", SPS_TAG} for i in narrowed.json())


def _xml_parts(response: httpx.Response) -> list[ElementTree.Element]:
    ctype = response.headers["content-type"]
    assert ctype.startswith('multipart/related; type="application/dicom+xml"')
    boundary = ctype.rsplit("boundary=", 1)[1].encode()
    chunks = response.content.split(b"--" + boundary)[1:-1]
    out = []
    for chunk in chunks:
        head, _, body = chunk.partition(b"\r\n\r\n")
        assert b"Content-Type: application/dicom+xml" in head
        out.append(ElementTree.fromstring(body.rstrip(b"\r\n")))
    return out


def test_dicomweb_answers_native_dicom_xml(broker: Runtime, http: httpx.Client) -> None:
    """PS3.18 multipart/related; type="application/dicom+xml": the same items as DICOM JSON."""
    base = broker.settings.fhir_base.rsplit("/fhir", 1)[0]
    url = f"{base}/dicomweb/modality-scheduled-procedure-steps"
    params = {"Modality": "MR"}
    as_json = http.get(url, params=params).json()
    accept = 'multipart/related; type="application/dicom+xml"'
    parts = _xml_parts(http.get(url, params=params, headers={"Accept": accept}))
    assert len(parts) == len(as_json) > 0
    for doc, item in zip(parts, as_json, strict=True):
        assert doc.tag == "NativeDicomModel"
        tags = [a.get("tag") for a in doc.findall("DicomAttribute")]
        assert tags == sorted(item)
        name = doc.find("DicomAttribute[@keyword='PatientName']/PersonName/Alphabetic")
        assert name is not None
        family = name.findtext("FamilyName")
        assert family == item["00100010"]["Value"][0]["Alphabetic"].split("^")[0]
        step = doc.find("DicomAttribute[@tag='00400100']/Item[@number='1']")
        assert step is not None
        modality = step.findtext("DicomAttribute[@keyword='Modality']/Value[@number='1']")
        assert modality == "MR"
