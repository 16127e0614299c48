"""End to end: FHIR writes over HTTP on a running ``fhirmwl serve`` runtime, then DCMTK
``findscu -W`` and pynetdicom ask its worklist SCP. The worklist index is maintained in the
same transaction as the FHIR write, so the very next C-FIND sees every change."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from mwl_scu import associate, find
from pydicom.dataset import Dataset
from tests.conftest import ig_examples, running_broker

from fhirmwl.runtime import Runtime


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Runtime]:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    with running_broker(db, dicom=True, timezone="Europe/Berlin") as runtime:
        yield runtime


def _findscu(port: int, keys: list[str], workdir: Path) -> list[Dataset]:
    out = workdir / f"rsp{len(list(workdir.iterdir()))}"
    out.mkdir()
    args = ["findscu", "-W", "-aet", "CT01", "-aec", "FHIRMWL", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    subprocess.run([*args, "127.0.0.1", str(port)], check=True, capture_output=True, timeout=30)
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


_KEYS = [
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT-RAD-01",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240101",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].Modality=CT",
    "PatientName",
    "AccessionNumber",
    "StudyInstanceUID",
]


def _task(client: httpx.Client) -> dict[str, Any]:
    bundle = client.get("/Task", params={"patient.identifier": "PID12345"}).json()
    return bundle["entry"][0]["resource"]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("findscu") is None, reason="DCMTK findscu not installed")
def test_http_write_then_findscu_sees_it(broker: Runtime, tmp_path: Path) -> None:
    base, port = broker.settings.fhir_base, broker.settings.dicom_port
    with httpx.Client(base_url=base, timeout=30) as client:
        assert _findscu(port, _KEYS, tmp_path) == []
        # The guide's examples as published; $create-order completes the RP/SPS ids.
        assert client.post("/$create-order", json=ig_examples()).status_code == 201
        found = _findscu(port, _KEYS, tmp_path)
        assert len(found) == 1
        item = found[0]
        assert str(item.PatientName) == "PLUTONIUM^DANIELLE"
        assert item.AccessionNumber == "A12345"
        # The guide's ImagingStudy is based on the ImagingServiceRequest only (I-14 revised).
        assert item.StudyInstanceUID == "2.16.124.113543.1154777499.30246.19789.350343004"
        # 12:00Z is 13:00 on the modality's wall clock (Europe/Berlin, winter)
        assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "130000"

        task = _task(client)
        moved = copy.deepcopy(task)
        moved["requestedPeriod"] = {"start": "2024-01-02T08:30:00Z"}
        r = client.put(
            f"/Task/{task['id']}",
            json=moved,
            headers={"If-Match": f'W/"{task["meta"]["versionId"]}"'},
        )
        assert r.status_code == 200, r.text
        assert _findscu(port, _KEYS, tmp_path) == []
        next_day = [k.replace("20240101", "20240102") for k in _KEYS]
        assert len(_findscu(port, next_day, tmp_path)) == 1

        patient_id = task["for"]["reference"].split("/")[1]
        patient = client.get(f"/Patient/{patient_id}").json()
        patient["name"] = [{"family": "CURIE", "given": ["MARIE"]}]
        assert client.put(f"/Patient/{patient_id}", json=patient).status_code == 200
        assert str(_findscu(port, next_day, tmp_path)[0].PatientName) == "CURIE^MARIE"

        cancelled = _task(client) | {"status": "cancelled"}
        assert client.put(f"/Task/{task['id']}", json=cancelled).status_code == 200
        assert _findscu(port, next_day, tmp_path) == []


def test_pynetdicom_query_on_serve(broker: Runtime) -> None:
    with httpx.Client(base_url=broker.settings.fhir_base, timeout=30) as client:
        assert client.post("/$create-order", json=ig_examples()).status_code == 201
    assoc = associate(broker.settings.dicom_port)
    try:
        query = Dataset()
        query.PatientName = "plu*"
        query.PatientID = ""
        sps = Dataset()
        sps.Modality = "CT"
        sps.ScheduledProcedureStepStartDate = "20231201-20240131"
        sps.ScheduledProcedureStepID = ""
        query.ScheduledProcedureStepSequence = [sps]
        results, final = find(assoc, query)
    finally:
        assoc.release()
    assert final.Status == 0x0000
    assert [r.PatientID for r in results] == ["PID12345"]
    assert results[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == "RP12345.1"
