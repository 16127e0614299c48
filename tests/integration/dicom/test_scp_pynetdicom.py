"""The worklist SCP against a pynetdicom SCU over loopback."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from mwl_scu import associate, find
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP
from fhirmwl.worklist import InMemorySource, WorklistQuery

StartSCP = Callable[..., WorklistSCP]


def _sps_query(**sps_keys: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    sps = Dataset()
    for keyword, value in {"Modality": "", "ScheduledStationAETitle": "", **sps_keys}.items():
        setattr(sps, keyword, value)
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def test_echo_and_find(dcmtk_scp: WorklistSCP) -> None:
    assoc = associate(dcmtk_scp.port)
    try:
        assert assoc.send_c_echo().Status == 0x0000
        query = _sps_query()
        query.PatientName = "vivaldi*"
        results, final = find(assoc, query)
    finally:
        assoc.release()
    assert final.Status == 0x0000
    assert len(results) == 3
    assert {str(r.PatientName) for r in results} == {"VIVALDI^ANTONIO"}
    assert all(r.SpecificCharacterSet == "ISO_IR 192" for r in results)
    assert all(set(r.dir()) >= {"PatientID", "AccessionNumber"} for r in results)


def test_combined_start_date_time_range(dcmtk_scp: WorklistSCP) -> None:
    assoc = associate(dcmtk_scp.port)
    try:
        results, _ = find(assoc, _sps_query(ScheduledProcedureStepStartTime="120000-"))
    finally:
        assoc.release()
    assert len(results) == 6
    assert all(r.ScheduledProcedureStepSequence[0].Modality for r in results)


def test_multi_item_sequence_key_is_a900(dcmtk_scp: WorklistSCP) -> None:
    query = _sps_query()
    query.ScheduledProcedureStepSequence.append(Dataset())
    assoc = associate(dcmtk_scp.port)
    try:
        results, final = find(assoc, query)
    finally:
        assoc.release()
    assert results == []
    assert final.Status == 0xA900
    assert "items" in final.ErrorComment


class _Failing:
    def find(self, q: WorklistQuery, limit: int | None = None) -> Iterator[Dataset]:
        raise RuntimeError("database is gone")

    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[dict[str, Any]]:
        raise RuntimeError("database is gone")


def test_internal_failure_is_c001(start_scp: StartSCP) -> None:
    scp = start_scp(_Failing())
    assoc = associate(scp.port)
    try:
        results, final = find(assoc, _sps_query())
    finally:
        assoc.release()
    assert results == []
    assert final.Status == 0xC001
    assert "RuntimeError" in final.ErrorComment


class _Slow(InMemorySource):
    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[dict[str, Any]]:
        for item in super().find_json(q, limit):
            time.sleep(0.05)
            yield item


def test_c_cancel_stops_with_fe00(start_scp: StartSCP, dcmtk_items: list[Dataset]) -> None:
    scp = start_scp(_Slow(dcmtk_items * 10))
    assoc = associate(scp.port)
    statuses = []
    try:
        responses = assoc.send_c_find(_sps_query(), "1.2.840.10008.5.1.4.31", msg_id=7)
        for status, _ds in responses:
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, 1)
        echo = assoc.send_c_echo()  # the association is still usable
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 20
    assert echo.Status == 0x0000


def test_c_cancel_stops_a_fast_long_answer(start_scp: StartSCP, dcmtk_items: list[Dataset]) -> None:
    """Answers are queued faster than they are sent; the SCP still sees a C-CANCEL between
    batches (the DUL reads incoming PDUs only when its send queue is empty). The answer is long
    enough (30,000 items) that it cannot be complete before the C-CANCEL arrives: with 3,000 the
    whole answer sometimes went out first on a fast run."""
    scp = start_scp(InMemorySource(dcmtk_items * 3000))
    assoc = associate(scp.port)
    statuses = []
    try:
        responses = assoc.send_c_find(_sps_query(), "1.2.840.10008.5.1.4.31", msg_id=9)
        for status, _ds in responses:
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(9, 1)
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 30000


def test_access_policy(start_scp: StartSCP, dcmtk_items: list[Dataset]) -> None:
    policy = AccessPolicy(
        allowed_calling_aets=frozenset({"AB45", "AA32"}),
        restrict_to_own_station=True,
        max_responses=1,
    )
    scp = start_scp(InMemorySource(dcmtk_items), policy)
    rejected = associate(scp.port, calling="INTRUDER")
    assert not rejected.is_established
    assoc = associate(scp.port, calling="AB45")
    try:
        results, final = find(assoc, _sps_query())
    finally:
        assoc.release()
    assert len(results) == 1
    assert results[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "AB45"
    assert final.Status == 0xA700
    assert "first 1" in final.ErrorComment


def test_latin1_and_japanese_charsets(start_scp: StartSCP) -> None:
    item = _sps_query(ScheduledStationAETitle="CT1", Modality="CT")
    item.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    item.PatientID = "J1"
    latin = _sps_query(ScheduledStationAETitle="CT1", Modality="CT")
    latin.PatientName = "VANILLÉ^LAURA"
    latin.PatientID = "L1"
    policy = AccessPolicy(response_charsets={"OLDCT": "ISO_IR 100", "JPCT": "\\ISO 2022 IR 87"})
    scp = start_scp(InMemorySource([item, latin]), policy)

    query = _sps_query()
    query.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    query.PatientName = "山田*"
    assoc = associate(scp.port, calling="JPCT")
    try:
        results, _ = find(assoc, query)
    finally:
        assoc.release()
    assert [str(r.PatientName) for r in results] == ["Yamada^Tarou=山田^太郎=やまだ^たろう"]
    assert list(results[0].SpecificCharacterSet) == ["", "ISO 2022 IR 87"]

    assoc = associate(scp.port, calling="OLDCT")
    try:
        results, _ = find(assoc, _sps_query())
    finally:
        assoc.release()
    names = sorted(str(r.PatientName) for r in results)
    assert names == ["VANILLÉ^LAURA", "Yamada^Tarou=??^??=???^???"]
    assert results[0].SpecificCharacterSet == "ISO_IR 100"


def test_misbehaving_peer_does_not_disturb_others(dcmtk_scp: WorklistSCP) -> None:
    garbage = socket.create_connection(("127.0.0.1", dcmtk_scp.port))
    garbage.sendall(b"\x01\x00\x00\x00\x10\x00")  # truncated A-ASSOCIATE-RQ, then silence
    stalled = associate(dcmtk_scp.port, calling="STALLED")  # established, never queries
    aborted = associate(dcmtk_scp.port, calling="ABORTS")
    aborted.abort()
    try:
        started = time.perf_counter()
        assoc = associate(dcmtk_scp.port)
        results, final = find(assoc, _sps_query())
        assoc.release()
        elapsed = time.perf_counter() - started
    finally:
        garbage.close()
        stalled.release()
    assert final.Status == 0x0000
    assert len(results) == 10
    assert elapsed < 2.0


def test_accepted_sockets_have_nodelay(dcmtk_scp: WorklistSCP) -> None:
    """The Nagle trap (design.md): without TCP_NODELAY each small C-FIND exchange stalls on
    delayed ACKs (~40-100 ms). Checked on the SCP's accepted socket itself, deterministically;
    the latency it causes is measured by bench/mwl_find.py, not asserted here."""
    query = _sps_query()
    query.PatientName = "*A*"
    assoc = associate(dcmtk_scp.port)
    try:
        results, _ = find(assoc, query)
        server_side = dcmtk_scp._server.active_associations
        assert server_side, "the SCP should hold the open association"
        for peer in server_side:
            sock = peer.dul.socket.socket
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()
    assert len(results) >= 5


def test_identifier_larger_than_the_peer_pdu_is_fragmented(
    start_scp: StartSCP, dcmtk_items: list[Dataset]
) -> None:
    """A peer with a small maximum PDU gets the identifier in several P-DATA-TF fragments."""
    item = dcmtk_items[0].copy()
    item.ImagingServiceRequestComments = "x" * 9000
    scp = start_scp(InMemorySource([item]))
    ae = AE(ae_title="SMALLPDU")
    ae.maximum_pdu_size = 4096
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="FHIRMWL")
    identifier = Dataset()
    identifier.ImagingServiceRequestComments = ""
    identifier.PatientID = ""
    try:
        results, final = find(assoc, identifier)
    finally:
        assoc.release()
    assert final.Status == 0x0000
    (answer,) = results
    assert answer.ImagingServiceRequestComments == "x" * 9000
    assert answer.PatientID == item.PatientID


def _many(dcmtk_items: list[Dataset], count: int) -> list[Dataset]:
    out = []
    for n in range(count):
        item = copy.deepcopy(dcmtk_items[n % len(dcmtk_items)])
        item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = f"SPS{n:05d}"
        out.append(item)
    return out


def test_long_answers_back_to_back_in_one_association(
    start_scp: StartSCP, dcmtk_items: list[Dataset]
) -> None:
    """Responses written straight to the socket (dicom/pending.py) and pynetdicom's own final
    responses stay in order over several long answers in one association."""
    scp = start_scp(InMemorySource(_many(dcmtk_items, 300)))
    assoc = associate(scp.port)
    try:
        for _ in range(3):
            results, final = find(assoc, _sps_query(ScheduledProcedureStepID=""))
            assert final.Status == 0x0000
            ids = [r.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for r in results]
            assert sorted(ids) == [f"SPS{n:05d}" for n in range(300)]
        assert assoc.send_c_echo().Status == 0x0000  # the association is still in order
    finally:
        assoc.release()


def test_big_endian_context_is_answered_by_pynetdicom(dcmtk_scp: WorklistSCP) -> None:
    """Explicit VR Big Endian (retired, still negotiable): pynetdicom encodes and sends every
    response; the answer equals the Little Endian one."""
    answers = {}
    for syntax in (ExplicitVRLittleEndian, ExplicitVRBigEndian):
        ae = AE(ae_title="BIGENDIAN")
        ae.add_requested_context(ModalityWorklistInformationFind, [syntax])
        assoc = ae.associate("127.0.0.1", dcmtk_scp.port, ae_title="FHIRMWL")
        assert assoc.is_established
        try:
            results, final = find(assoc, _sps_query())
        finally:
            assoc.release()
        assert final.Status == 0x0000
        answers[syntax] = sorted(repr(sorted(r.to_json_dict().items())) for r in results)
    assert answers[ExplicitVRBigEndian] == answers[ExplicitVRLittleEndian]
    assert len(answers[ExplicitVRBigEndian]) == 10
