"""End to end across both doors: FHIR order operations over HTTP on a running runtime, and the
DICOM Modality Worklist seen by DCMTK ``findscu -W``. ``$create-order`` schedules a step from
the catalogue, ``$update-order`` moves it, ``$cancel-order`` removes it; the worklist index is
kept in the writing transaction, so the very next C-FIND must see each change."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from fhirmwl.fhir import model
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import order_bundle

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("findscu") is None, reason="DCMTK findscu not installed"),
]

SPS = "ScheduledProcedureStepSequence[0]"


@pytest.fixture
def broker(tmp_path: Path, catalogue_file: Path) -> Iterator[Runtime]:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    with running_broker(
        db, dicom=True, catalogue=str(catalogue_file), timezone="Europe/Berlin"
    ) as runtime:
        yield runtime


def _findscu(port: int, accession: str, day: str, workdir: Path) -> list[Dataset]:
    out = workdir / f"rsp{len(list(workdir.glob('rsp*')))}"
    out.mkdir()
    keys = [
        f"AccessionNumber={accession}",
        f"{SPS}.Modality=CT",
        f"{SPS}.ScheduledProcedureStepStartDate={day}",
        f"{SPS}.ScheduledProcedureStepStartTime",
        f"{SPS}.ScheduledStationAETitle",
        f"{SPS}.ScheduledProcedureStepID",
        "RequestedProcedureID",
        "StudyInstanceUID",
        "PatientName",
    ]
    args = ["findscu", "-W", "-aet", "E2E", "-aec", "FHIRMWL", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    subprocess.run([*args, "127.0.0.1", str(port)], check=True, capture_output=True, timeout=30)
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def _of(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _value(resource: dict[str, Any], kind: tuple[str, str]) -> str:
    ident = model.identifier_of_type(resource, kind)
    assert ident is not None, f"{resource['resourceType']} has no {kind[1]} identifier"
    return str(ident["value"])


def _move(api: httpx.Client, isr_id: str, task: dict[str, Any]) -> None:
    moved = dict(
        task, requestedPeriod={"start": "2030-01-02T14:15:00Z", "end": "2030-01-02T14:45:00Z"}
    )
    entry = {"resource": moved, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
    r = api.post(
        f"/ServiceRequest/{isr_id}/$update-order",
        json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
    )
    assert r.status_code == 200, r.text


def test_create_update_cancel_seen_by_findscu(broker: Runtime, tmp_path: Path) -> None:
    port = broker.settings.dicom_port
    with httpx.Client(base_url=broker.settings.fhir_base, timeout=30) as api:
        created = api.post("/$create-order", json=order_bundle())
        assert created.status_code == 201, created.text
        order = created.json()
        isr = next(
            e["resource"]
            for e in order["entry"]
            if e["resource"]["resourceType"] == "ServiceRequest"
            and not e["resource"].get("basedOn")
        )
        task, study = _of(order, "Task"), _of(order, "ImagingStudy")
        accession = _value(isr, model.ACSN)

        found = _findscu(port, accession, "20300101", tmp_path)
        assert len(found) == 1
        item = found[0]
        step = item.ScheduledProcedureStepSequence[0]
        assert item.AccessionNumber == accession
        assert item.StudyInstanceUID == study["identifier"][0]["value"].removeprefix("urn:oid:")
        assert step.ScheduledStationAETitle in ("CT1", "CT2")  # picked from the catalogue group
        assert step.ScheduledProcedureStepID == _value(task, model.SPSID)
        assert step.ScheduledProcedureStepStartTime.startswith("1000")  # 09:00Z in Berlin

        _move(api, isr["id"], task)
        assert _findscu(port, accession, "20300101", tmp_path) == []
        moved = _findscu(port, accession, "20300102", tmp_path)
        assert len(moved) == 1
        assert (
            moved[0]
            .ScheduledProcedureStepSequence[0]
            .ScheduledProcedureStepStartTime.startswith("1515")
        )

        cancelled = api.post(f"/ServiceRequest/{isr['id']}/$cancel-order")
        assert cancelled.status_code == 200, cancelled.text
        assert api.get(f"/Task/{task['id']}").json()["status"] == "cancelled"
        assert _findscu(port, accession, "20300102", tmp_path) == []
        assert _findscu(port, accession, "", tmp_path) == []  # on no day at all
