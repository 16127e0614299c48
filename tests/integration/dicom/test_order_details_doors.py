"""Contrast, pre-medication, patient transport and confidentiality through the real doors, on both
backends: an OMI over MLLP (OBR-30, OBR-43, ORC-28) reaches a C-FIND answer, and ``fhirmwl mwl
import`` then ``mwl export`` keeps all four with the values in their FHIR homes (Task.input,
RequestedProcedure.orderDetail, Patient.meta.security), not in the Task's residual."""

from __future__ import annotations

from pathlib import Path

import httpx
from mwl_scu import associate, find
from pydicom.dataset import Dataset
from tests.conftest import running_broker
from typer.testing import CliRunner

from fhirmwl.cli_mwl import app
from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.fhir.model import DICOM_ATTRIBUTES_EXT
from fhirmwl.mllp import send_messages

V2 = Path(__file__).parents[2] / "unit" / "mapping_v2" / "golden" / "omi_order_details.hl7"
CONFIDENTIALITY = "ConfidentialityConstraintOnPatientDataDescription"
ITEM = """\
(0008,0005) CS  [ISO_IR 192]
(0008,0050) SH  ACC0777
(0010,0010) PN  ROSSI^PAOLA
(0010,0020) LO  PAT0777
(0020,000d) UI  1.2.826.0.1.3680043.10.999.777
(0032,1060) LO  MR knee
(0040,0100) SQ
(fffe,e000) -
(0008,0060) CS  MR
(0032,1070) LO  GADOBUTROL 7.5 ML
(0040,0001) AE  MR01
(0040,0002) DA  20250105
(0040,0003) TM  101500
(0040,0007) LO  MR knee left
(0040,0009) SH  SPS0777
(0040,0012) LO  LORAZEPAM 1 MG
(fffe,e00d) -
(fffe,e0dd) -
(0040,1001) SH  RP0777
(0040,1004) LO  STRETCHER
(0040,3001) LO  restricted
"""


def _identifier() -> Dataset:
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.PatientTransportArrangements = ""
    setattr(ds, CONFIDENTIALITY, "")
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    sps.RequestedContrastAgent = ""
    sps.PreMedication = ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def test_v2_order_details_reach_c_find(db_url: str) -> None:
    with running_broker(db_url, dicom=True, mllp=True) as rt:
        acks = send_messages("127.0.0.1", rt.settings.mllp_port, [V2.read_bytes()])
        assert b"MSA|AA" in acks[0], acks[0]
        assoc = associate(rt.settings.dicom_port)
        try:
            items, final = find(assoc, _identifier())
        finally:
            assoc.release()
    assert final.Status == 0x0000
    (item,) = items
    assert item.AccessionNumber == "ACC0021"
    assert item.PatientTransportArrangements == "Oxygen during transport"  # OBR-43 (OBR-30 WHLC)
    assert item[CONFIDENTIALITY].value == "Restricted - staff only"  # ORC-28
    sps = item.ScheduledProcedureStepSequence[0]
    assert "RequestedContrastAgent" not in sps or not sps.RequestedContrastAgent  # none ordered


def test_import_export_keeps_order_details(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "in" / "item.dump"
    source.parent.mkdir()
    source.write_text(ITEM, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(source), "--db", db_url, "--timezone", "UTC"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", "--out", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    (exported,) = (out / "FHIRMWL").glob("*.wl")
    back, original = read_worklist_file(exported), read_worklist_file(source)
    for keyword in ("PatientTransportArrangements", CONFIDENTIALITY):
        assert back[keyword].value == original[keyword].value, keyword
    sps_back, sps = (
        back.ScheduledProcedureStepSequence[0],
        original.ScheduledProcedureStepSequence[0],
    )
    for keyword in ("RequestedContrastAgent", "PreMedication"):
        assert sps_back[keyword].value == sps[keyword].value, keyword
    # the values live in FHIR, so the Task keeps no residual for them
    with (
        running_broker(db_url) as rt,
        httpx.Client(base_url=rt.settings.fhir_base, timeout=30) as http,
    ):
        task = http.get("/Task", params={"identifier": "SPS0777"}).json()["entry"][0]["resource"]
        rp = http.get(task["basedOn"][0]["reference"]).json()
        patient = http.get(task["for"]["reference"]).json()
    assert not any(e["url"] == DICOM_ATTRIBUTES_EXT for e in task.get("extension", []))
    assert [i.get("valueString") for i in task["input"][1:]] == [
        "GADOBUTROL 7.5 ML",
        "LORAZEPAM 1 MG",
    ]
    assert rp["orderDetail"][0]["parameter"][0]["valueString"] == "STRETCHER"
    assert patient["meta"]["security"][0]["code"] == "R"
