"""The same bad matching value gets the same verdict at every door: C-FIND answers A900 with
an Error Comment naming the attribute (never C001, never Success with 0 matches), ``$mwl-query``
and DICOMweb answer 400 naming the parameter. The rule lives once, in ``worklist.values``."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from fhirmwl.runtime import Runtime

SPS = "ScheduledProcedureStepSequence"
BAD = [
    ("ScheduledProcedureStepStartDate", "2026-11-29", "malformed DA"),
    ("ScheduledProcedureStepStartDate", "20261301", None),  # well-formed: no match, no error
    ("ScheduledProcedureStepStartTime", "25:00:00:00", "malformed TM"),
    ("ScheduledProcedureStepStartDate", "2026.11.29-2026-12-01", "malformed DA"),
    ("PatientName", "A" * 65_536, "PN value of 65536 characters"),
    ("PatientID", "P" * 65, "LO value of 65 characters"),
    ("AccessionNumber", "A" * 17, "SH value of 17 characters"),
    ("StudyInstanceUID", "1.2.x", "malformed UID"),
]
SPS_KEYS = {"ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"}


def _c_find(port: int, keyword: str, value: str) -> tuple[int, Dataset | None]:
    ds = Dataset()
    item = Dataset()
    item.ScheduledStationAETitle = ""
    target = item if keyword in SPS_KEYS else ds
    tag = tag_for_keyword(keyword)
    target.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE))
    ds.ScheduledProcedureStepSequence = [item]
    ae = AE(ae_title="BADVALUES")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    assert assoc.is_established
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        final: tuple[int, Dataset | None] = (-1, None)
        for status, _ in assoc.send_c_find(ds, ModalityWorklistInformationFind):
            assert status is not None
            final = (int(status.Status), status)
    finally:
        assoc.release()
    return final


@pytest.mark.parametrize(("keyword", "value", "problem"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_same_verdict_at_every_door(
    broker: Runtime, http: httpx.Client, keyword: str, value: str, problem: str | None
) -> None:
    status, rsp = _c_find(broker.settings.dicom_port, keyword, value)
    op = http.post(
        "/Task/$mwl-query",
        content=f"{keyword}={value}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    web_base = broker.settings.fhir_base.rsplit("/fhir", 1)[0] + "/dicomweb"
    path = f"{SPS}.{keyword}" if keyword in SPS_KEYS else keyword
    # (a URL cannot carry 64 KB: DICOMweb gets the same kind of value at 70 characters)
    web_value = value if len(value) < 4096 else value[:70]
    web = http.get(f"{web_base}/modality-scheduled-procedure-steps", params={path: web_value})
    if problem is None:
        assert status == 0x0000 and op.status_code == 200 and web.status_code == 204
        return
    assert status == 0xA900, hex(status)
    assert rsp is not None
    assert rsp.ErrorComment.startswith(keyword) and problem[:12] in rsp.ErrorComment
    assert len(rsp.ErrorComment) <= 64
    assert op.status_code == 400, op.text
    assert keyword in op.json()["issue"][0]["diagnostics"]
    assert problem in op.json()["issue"][0]["diagnostics"]
    assert web.status_code == 400 and problem.split(" of ")[0] in web.text
