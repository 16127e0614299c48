"""Health, readiness, Prometheus metrics and request ids against a running broker (both backends).

Traffic goes through every door with real clients (httpx, the MLLP client over TCP, a pynetdicom
SCU); the metrics text is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.mllp import send_messages
from tests.conftest import running_broker
from tests.integration.mllp_service.messages import orm


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lab), v in samples.items()
        if n == name and all(dict(lab).get(k) == val for k, val in labels.items())
    )


def _cfind(port: int) -> int:
    ae = AE(ae_title="OPSSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    assert assoc.is_established
    ds = Dataset()
    ds.PatientName = ""
    ds.AccessionNumber = ""
    sps = Dataset()
    sps.Modality = "CT"
    ds.ScheduledProcedureStepSequence = [sps]
    items = 0
    for status, _ in assoc.send_c_find(ds, ModalityWorklistInformationFind):
        if status and status.Status in (0xFF00, 0xFF01):
            items += 1
    assoc.release()
    return items


def test_health_readiness_and_metrics(db_url: str) -> None:
    with running_broker(db_url, dicom=True, mllp=True) as rt:
        s = rt.settings
        base = f"http://127.0.0.1:{s.http_port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            live = http.get("/healthz")
            assert live.status_code == 200 and live.json()["status"] == "ok"
            ready = http.get("/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["store"]["ok"] and body["store"]["missing_migrations"] == []
            assert body["listeners"]["http"] and body["listeners"]["mllp"]
            assert body["listeners"]["dicom"]

            before = _samples(http.get("/metrics").text)
            acks = send_messages(
                "127.0.0.1", s.mllp_port, [orm("NW", "OPS1", "OPSMSG1")], timeout=30
            )
            assert b"MSA|AA" in acks[0]
            assert _cfind(s.dicom_port) == 1
            assert http.get("/fhir/Patient").status_code == 200
            assert http.get("/fhir/Patient/does-not-exist").status_code == 404

            metrics = http.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            after = _samples(metrics.text)

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    assert delta("fhirmwl_mllp_messages_total", message_type="ORM^O01", ack_code="AA") == 1
    assert delta("fhirmwl_mllp_ack_seconds_count") == 1
    assert delta("fhirmwl_dicom_cfind_requests_total", status="0000") == 1
    assert delta("fhirmwl_dicom_cfind_items_sum") == 1
    assert delta("fhirmwl_http_requests_total", interaction="search", status="2xx") >= 1
    assert delta("fhirmwl_http_requests_total", interaction="read", status="4xx") == 1
    assert _sum(after, "fhirmwl_store_up") == 1
    assert _sum(after, "fhirmwl_schema_version") >= 1
    stations = {dict(lab).get("station"): v for (n, lab), v in after.items()}
    assert any(n == "fhirmwl_worklist_items" for (n, _lab) in after), "worklist gauge missing"
    assert sum(v for (n, lab), v in after.items() if n == "fhirmwl_worklist_items") >= 1, stations
    # No patient data in the exposition (the order's patient is DOE^JANE).
    assert "DOE" not in metrics.text and "JANE" not in metrics.text


def test_readiness_fails_when_a_listener_stops(tmp_path: Any) -> None:
    with running_broker(f"sqlite:///{tmp_path / 'r.db'}", dicom=True) as rt:
        dicom = next(x for x in rt.services.running if x.name == "dicom")
        dicom.stop()
        with httpx.Client(base_url=f"http://127.0.0.1:{rt.settings.http_port}") as http:
            answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["listeners"]["dicom"] is False
        rt.services.running.remove(dicom)
        rt.listeners.remove(dicom)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("abc-123.X:1", True), ("bad id with spaces", False), ("", False)],
)
def test_request_id_echoed_or_generated(tmp_path: Any, sent: str, echoed: bool) -> None:
    with running_broker(f"sqlite:///{tmp_path / 'q.db'}") as rt:
        headers = {"X-Request-ID": sent} if sent else {}
        with httpx.Client(base_url=f"http://127.0.0.1:{rt.settings.http_port}") as http:
            answer = http.get("/fhir/metadata", headers=headers)
    got = answer.headers["x-request-id"]
    if echoed:
        assert got == sent
    else:
        assert got != sent and len(got) == 32
