"""MPPS over DICOM against a running broker: pynetdicom plays the modality.

An order placed over HTTP appears on the worklist; the modality picks it with C-FIND, reports
N-CREATE IN PROGRESS (the next C-FIND shows STARTED), then N-SET COMPLETED (the step leaves the
worklist, the Task is completed, the ImagingStudy has the counts) — or DISCONTINUED. Unscheduled
steps are matched once the order arrives; illegal requests get their DIMSE status. SQLite and
PostgreSQL.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.fhir import model
from fhirmwl.mpps.model import MPPS_SOP_CLASS
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import order_bundle

ACSN_TYPE = {"coding": [{"system": model.ACSN[0], "code": model.ACSN[1]}]}


@pytest.fixture
def broker(db_url: str, catalogue_file: Path) -> Iterator[Runtime]:
    with running_broker(db_url, dicom=True, catalogue=str(catalogue_file)) as runtime:
        yield runtime


class Modality:
    """One association with MWL FIND and MPPS contexts."""

    def __init__(self, port: int) -> None:
        ae = AE(ae_title="CT1")
        ae.add_requested_context(ModalityWorklistInformationFind)
        ae.add_requested_context(MPPS_SOP_CLASS)
        self.assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
        assert self.assoc.is_established
        self.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def worklist(self) -> list[Dataset]:
        q = Dataset()
        for k in ("PatientID", "AccessionNumber", "RequestedProcedureID", "StudyInstanceUID"):
            setattr(q, k, "")
        sps = Dataset()
        sps.ScheduledProcedureStepID = ""
        sps.ScheduledProcedureStepStatus = ""
        sps.Modality = ""
        q.ScheduledProcedureStepSequence = [sps]
        out = []
        for status, ds in self.assoc.send_c_find(q, ModalityWorklistInformationFind):
            if status.Status in (0xFF00, 0xFF01):
                out.append(ds)
        return out

    def create(self, ds: Dataset, uid: str | None = None) -> tuple[Dataset, str]:
        uid = uid or generate_uid(prefix="2.25.")
        status, _ = self.assoc.send_n_create(ds, MPPS_SOP_CLASS, uid)
        return status, uid

    def set(self, uid: str, ds: Dataset) -> Dataset:
        status, _ = self.assoc.send_n_set(ds, MPPS_SOP_CLASS, uid)
        return status

    def close(self) -> None:
        self.assoc.release()


@pytest.fixture
def modality(broker: Runtime) -> Iterator[Modality]:
    m = Modality(broker.settings.dicom_port)
    yield m
    m.close()


def in_progress(item: Dataset | None, patient_id: str = "PID12345") -> Dataset:
    ds = Dataset()
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ref = Dataset()
    ref.StudyInstanceUID = item.StudyInstanceUID if item else generate_uid(prefix="2.25.")
    ref.AccessionNumber = item.AccessionNumber if item else ""
    ref.RequestedProcedureID = item.RequestedProcedureID if item else ""
    sps_id = item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID if item else ""
    ref.ScheduledProcedureStepID = sps_id
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepStartDate = "20300101"
    ds.PerformedProcedureStepStartTime = "090500"
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def final(state: str, series: int = 2, images: int = 3, reason: str = "") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = state
    ds.PerformedProcedureStepEndDate = "20300101"
    ds.PerformedProcedureStepEndTime = "092000"
    items = []
    for _ in range(series):
        s = Dataset()
        s.SeriesInstanceUID = generate_uid(prefix="2.25.")
        s.Modality = "CT"
        refs = []
        for _ in range(images):
            r = Dataset()
            r.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            r.ReferencedSOPInstanceUID = generate_uid(prefix="2.25.")
            refs.append(r)
        s.ReferencedImageSequence = refs
        items.append(s)
    ds.PerformedSeriesSequence = items
    if reason:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = reason, "DCM"
        code.CodeMeaning = "Equipment failure"
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds


def place_order(broker: Runtime, accession: str | None = None) -> str:
    bundle = order_bundle()
    if accession:
        isr = bundle["entry"][0]["resource"]
        isr["identifier"].append({"type": ACSN_TYPE, "system": "urn:test:acsn", "value": accession})
    r = httpx.post(f"{broker.settings.fhir_base}/$create-order", json=bundle, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Order-Id"])


def fhir(broker: Runtime, path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{broker.settings.fhir_base}/{path}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def tasks(broker: Runtime) -> list[dict[str, Any]]:
    return [e["resource"] for e in fhir(broker, "Task").get("entry", [])]


def test_in_progress_then_completed(broker: Runtime, modality: Modality) -> None:
    place_order(broker)
    [item] = modality.worklist()
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"
    status, uid = modality.create(in_progress(item))
    assert status.Status == 0x0000
    [item] = modality.worklist()
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"
    assert [t["status"] for t in tasks(broker)] == ["in-progress"]

    assert modality.set(uid, final("COMPLETED")).Status == 0x0000
    assert modality.worklist() == []
    [task] = tasks(broker)
    assert task["status"] == "completed"
    [study] = [e["resource"] for e in fhir(broker, "ImagingStudy")["entry"]]
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (2, 6)
    [proc] = [e["resource"] for e in fhir(broker, "Procedure")["entry"]]
    assert proc["status"] == "completed"
    assert proc["identifier"][0]["value"] == f"urn:oid:{uid}"
    assert proc["basedOn"] == task["basedOn"]
    assert proc["occurrencePeriod"]["end"].startswith("2030-01-01T09:20")
    assert study["partOf"] == [{"reference": f"Procedure/{proc['id']}"}]
    # the order rolls up: every step completed → requested procedure and order completed
    statuses = {e["resource"]["status"] for e in fhir(broker, "ServiceRequest")["entry"]}
    assert statuses == {"completed"}


def test_discontinued(broker: Runtime, modality: Modality) -> None:
    place_order(broker)
    [item] = modality.worklist()
    status, uid = modality.create(in_progress(item))
    assert status.Status == 0x0000
    assert modality.set(uid, final("DISCONTINUED", series=1, images=1, reason="110501")).Status == 0
    assert modality.worklist() == []
    [task] = tasks(broker)
    assert task["status"] == "failed"  # images were acquired: attempted, not completed
    assert task["statusReason"]["concept"]["coding"][0]["code"] == "110501"
    [proc] = [e["resource"] for e in fhir(broker, "Procedure")["entry"]]
    assert proc["status"] == "stopped"


def test_discontinued_without_images_cancels(broker: Runtime, modality: Modality) -> None:
    place_order(broker)
    [item] = modality.worklist()
    # no Affected SOP Instance UID in the request: the SCP assigns one and returns it
    status, _ = modality.assoc.send_n_create(in_progress(item), MPPS_SOP_CLASS)
    assert status.Status == 0x0000
    [proc] = [e["resource"] for e in fhir(broker, "Procedure")["entry"]]
    uid = proc["identifier"][0]["value"].removeprefix("urn:oid:")
    assert uid.startswith("2.25.")
    assert modality.set(uid, final("DISCONTINUED", series=0)).Status == 0x0000
    assert [t["status"] for t in tasks(broker)] == ["cancelled"]


def test_unscheduled_matched_later_by_accession_and_patient(
    broker: Runtime, modality: Modality
) -> None:
    by_accession = in_progress(None, patient_id="SOMEONE-ELSE")
    by_accession.ScheduledStepAttributesSequence[0].AccessionNumber = "UNSCHED1"
    status, _ = modality.create(by_accession)
    assert status.Status == 0x0000
    [proc] = [e["resource"] for e in fhir(broker, "Procedure")["entry"]]
    assert "basedOn" not in proc and proc["status"] == "in-progress"
    place_order(broker, accession="UNSCHED1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and tasks(broker)[0]["status"] != "in-progress":
        time.sleep(0.05)
    assert [t["status"] for t in tasks(broker)] == ["in-progress"]
    proc = fhir(broker, f"Procedure/{proc['id']}")
    assert proc["basedOn"] == tasks(broker)[0]["basedOn"]

    # no reference at all: matched by patient (one open CT step of PID12345)
    status, uid = modality.create(in_progress(None))
    assert status.Status == 0x0000
    assert modality.set(uid, final("COMPLETED")).Status == 0x0000
    second = place_order(broker)
    deadline = time.monotonic() + 10
    done: list[str] = []
    while time.monotonic() < deadline and "completed" not in done:
        done = [t["status"] for t in tasks(broker)]
        time.sleep(0.05)
    assert sorted(done) == ["completed", "in-progress"]
    assert fhir(broker, f"ServiceRequest/{second}")["status"] == "completed"


def test_illegal_requests_get_their_status(broker: Runtime, modality: Modality) -> None:
    place_order(broker)
    [item] = modality.worklist()
    completed_first = in_progress(item)
    completed_first.PerformedProcedureStepStatus = "COMPLETED"
    assert modality.create(completed_first)[0].Status == 0x0106
    missing = in_progress(item)
    del missing.Modality
    status, _ = modality.create(missing)
    assert status.Status == 0x0120 and "Modality" in status.ErrorComment
    assert modality.set(generate_uid(prefix="2.25."), final("COMPLETED")).Status == 0x0112

    status, uid = modality.create(in_progress(item))
    assert status.Status == 0x0000
    assert modality.create(in_progress(item), uid)[0].Status == 0x0111  # duplicate instance
    no_end = Dataset()
    no_end.PerformedProcedureStepStatus = "COMPLETED"
    status = modality.set(uid, no_end)
    assert status.Status == 0x0110 and "PerformedProcedureStepEndDate" in status.ErrorComment
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "DONE"
    assert modality.set(uid, bad).Status == 0x0106
    moved = Dataset()
    moved.PerformedStationAETitle = "MR9"
    assert modality.set(uid, moved).Status == 0x0106
    assert [t["status"] for t in tasks(broker)] == ["in-progress"]  # nothing half-applied

    assert modality.set(uid, final("COMPLETED")).Status == 0x0000
    status = modality.set(uid, final("DISCONTINUED"))
    assert status.Status == 0x0110 and status.ErrorID == 0xA710
    # a new performed step for the completed scheduled step: the status guard refuses it
    status, _ = modality.create(in_progress(item))
    assert status.Status == 0x0110 and "completed" in status.ErrorComment
    assert [t["status"] for t in tasks(broker)] == ["completed"]
    assert len(fhir(broker, "Procedure")["entry"]) == 1  # the refused one left nothing
    assert modality.worklist() == []  # the association survived every refusal


@pytest.mark.postgres
def test_concurrent_duplicate_create_on_postgres(pg_url: str, catalogue_file: Path) -> None:
    """Two associations N-CREATE the same SOP Instance UID at once: one wins, one gets 0111."""
    import threading

    with running_broker(pg_url, dicom=True, catalogue=str(catalogue_file)) as runtime:
        place_order(runtime)
        first, second = Modality(runtime.settings.dicom_port), Modality(runtime.settings.dicom_port)
        try:
            [item] = first.worklist()
            uid = generate_uid(prefix="2.25.")
            start = threading.Barrier(2)
            statuses: list[int] = []

            def create(m: Modality) -> None:
                start.wait()
                statuses.append(int(m.create(in_progress(item), uid)[0].Status))

            threads = [threading.Thread(target=create, args=(m,)) for m in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        finally:
            first.close()
            second.close()
        assert sorted(statuses) == [0x0000, 0x0111]
        assert len(fhir(runtime, "Procedure")["entry"]) == 1
        assert [t["status"] for t in tasks(runtime)] == ["in-progress"]


def test_site_policy_hides_started_steps(tmp_path: Path, catalogue_file: Path) -> None:
    """Without ``in-progress`` in ``worklist_statuses`` the step leaves the worklist."""
    db = f"sqlite:///{tmp_path / 'policy.db'}"
    statuses = "requested,received,accepted,ready"
    with running_broker(
        db, dicom=True, catalogue=str(catalogue_file), worklist_statuses=statuses
    ) as runtime:
        place_order(runtime)
        modality = Modality(runtime.settings.dicom_port)
        try:
            [item] = modality.worklist()
            assert modality.create(in_progress(item))[0].Status == 0x0000
            assert modality.worklist() == []
            assert [t["status"] for t in tasks(runtime)] == ["in-progress"]
        finally:
            modality.close()
