"""Tolerant intake and precise errors over real MLLP and HTTP, on both backends (issue 10, item 6):
table 0074 modalities, ERR-2/3/4/8, MSH-18 that does not match the bytes, NUL characters, and
orders for a patient identifier retired by A40/A47."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhirmwl.hl7v2.ack import clip
from fhirmwl.runtime import Runtime
from fhirmwl.services.ingest_v2 import log
from tests.conftest import running_broker
from tests.integration.mllp_service.conftest import order_state
from tests.integration.mllp_service.messages import a40, msa, orm
from tests.integration.pipeline.conftest import client, err_segments, sender, worklist_items
from tests.integration.pipeline.orders import create_order_bundle

CATALOGUE = """
[procedures.CTABD]
modality = "CT"
stations = ["CT1"]
"""
A47 = (
    "MSH|^~\\&|ADT|HOSP|MWL|HOSP|20250101130000||ADT^A47^ADT_A30|{cid}|P|2.5.1\r"
    "EVN|A47|20250101130000\r"
    "PID|||{new}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "MRG|{old}^^^HOSP^MR\r"
)


@pytest.fixture
def catalogued(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE)
    with running_broker(db_url, mllp=True, catalogue=str(path)) as runtime:
        yield runtime


def _modalities(runtime: Runtime) -> dict[str, str]:
    return {
        i["00402016"]["Value"][0]: i["00400100"]["Value"][0]["00080060"]["Value"][0]
        for i in worklist_items(runtime)
    }


def test_table_0074_modality_is_derived_with_a_warning(catalogued: Runtime) -> None:
    send = sender(catalogued)
    rad = orm("NW", "M1", "M-C1").replace(b"||||CT\r", b"||||RAD\r")
    xray = orm("NW", "M2", "M-C2").replace(b"||||CT\r", b"||||XRAY\r").replace(b"CTABD", b"XR1")
    a1, a2 = send(rad, xray)
    assert msa(a1)[0] == msa(a2)[0] == "AA"
    (e1,) = err_segments(a1)
    assert (e1[2], e1[3].split("^")[0], e1[4]) == ("OBR^1^24", "103", "W")
    assert "'RAD' is not a DICOM modality" in e1[8] and "CT used (procedure catalogue)" in e1[8]
    assert "OT used (default modality)" in err_segments(a2)[0][8]
    assert _modalities(catalogued) == {"M1": "CT", "M2": "OT"}


def test_err_text_is_cut_at_a_word_boundary() -> None:
    text = "the value " + "word " * 80
    assert clip(text, 250).endswith("word...") and len(clip(text, 250)) <= 250
    assert clip("short", 250) == "short"


def test_nul_character_is_a_precise_permanent_error(broker: Runtime) -> None:
    (ack,) = sender(broker)(orm("NW", "N1", "N-C1").replace(b"DOE^JANE", b"DOE^JA\x00NE"))
    assert msa(ack) == ("AE", "102")
    (err,) = err_segments(ack)
    assert err[2] == "PID^1^5" and "NUL character" in err[8] and "store failure" not in err[8]
    with client(broker) as http:
        answer = http.post(
            "/Patient",
            content=b'{"resourceType": "Patient", "name": [{"family": "DO\\u0000E"}]}',
            headers={"content-type": "application/fhir+json"},
        )
    assert answer.status_code == 400
    (issue,) = answer.json()["issue"]
    assert issue["expression"] == ["Patient.name[0].family"] and "NUL" in issue["diagnostics"]


def test_charset_mismatch_is_stored_with_a_warning(broker: Runtime) -> None:
    message = orm("NW", "U1", "U-C1").replace(b"DOE^JANE", "DÖE^JANE".encode())
    message = message.replace(b"|P|2.3.1\r", b"|P|2.3.1||||||8859/1\r")
    (ack,) = sender(broker)(message)
    assert msa(ack)[0] == "AA"
    (err,) = err_segments(ack)
    assert err[2] == "MSH^1^18" and err[4] == "W" and "bytes are UTF-8" in err[8]
    with broker.services.store.read() as tx:
        (row,) = log.recent(tx.conn, 1)
    assert row.status == log.APPLIED and "MSH-18" in (row.error or "")
    assert worklist_items(broker)[0]["00100010"]["Value"][0]["Alphabetic"] == "DÖE^JANE"


def _subject(runtime: Runtime, placer: str) -> str:
    with runtime.services.store.read() as tx:
        return str(order_state(tx, placer)["subject"])


def test_order_for_a_merged_identifier_attaches_to_the_survivor(broker: Runtime) -> None:
    send = sender(broker)
    send(orm("NW", "S1", "S-C1", pid="OLD1"), orm("NW", "S2", "S-C2", pid="KEEP1"))
    (merge,) = send(a40("KEEP1", "OLD1", "S-C3"))
    assert msa(merge) == ("AA", "")
    (late,) = send(orm("NW", "S3", "S-C4", pid="OLD1", msh7="20250101140000"))
    assert msa(late)[0] == "AA"
    (info,) = err_segments(late)
    assert (info[2], info[4]) == ("PID^1^3", "I") and "retired by a merge" in info[8]
    assert _subject(broker, "S3") == _subject(broker, "S2")


def test_order_for_a_changed_identifier_attaches_to_its_patient(broker: Runtime) -> None:
    send = sender(broker)
    send(orm("NW", "T1", "T-C1", pid="A47OLD"))
    (change,) = send(A47.format(cid="T-C2", new="A47NEW", old="A47OLD").encode())
    assert msa(change) == ("AA", "")
    (late,) = send(orm("NW", "T2", "T-C3", pid="A47OLD", msh7="20250101140000"))
    assert msa(late)[0] == "AA"
    assert _subject(broker, "T2") == _subject(broker, "T1")
    subject = _subject(broker, "T1")
    with broker.services.store.read() as tx:
        patient = tx.get("Patient", subject.split("/")[1])
    values = [(i["value"], i.get("use")) for i in patient["identifier"]]
    assert values == [("A47NEW", None), ("A47OLD", "old")]


def test_catalogue_and_v2_resolve_one_station_device(catalogued: Runtime) -> None:
    bundle = create_order_bundle("D1")
    bundle["entry"] = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] not in ("Task", "Device")
    ]
    for entry in bundle["entry"]:
        if "code" in entry["resource"]:
            entry["resource"]["code"] = {"concept": {"coding": [{"code": "CTABD"}]}}
    with client(catalogued) as http:
        assert http.post("/$create-order", json=bundle).status_code == 201
    (ack,) = sender(catalogued)(orm("NW", "D2", "D-C2", omi=True).replace(b"MR1_AE", b"CT1"))
    assert msa(ack)[0] == "AA"
    with client(catalogued) as http:
        found = http.get("/Device", params={"name:exact": "CT1"}).json()
    assert len(found["entry"]) == 1
    assert {
        i["00400100"]["Value"][0]["00400001"]["Value"][0] for i in worklist_items(catalogued)
    } == {"CT1"}


def test_value_the_worklist_cannot_carry_is_refused_at_its_field(broker: Runtime) -> None:
    long_sps = orm("NW", "F1", "F-C1").replace(b"|SPSF1|", b"|SPS-ID-OF-19-CHARS|")
    long_aet = orm("NW", "F2", "F-C2", omi=True).replace(b"MR1_AE", b"STATION_AE_TITLE_17")
    a1, a2 = sender(broker)(long_sps, long_aet)
    (e1,), (e2,) = err_segments(a1), err_segments(a2)
    assert msa(a1) == msa(a2) == ("AE", "102")
    assert e1[2] == "OBR^1^20" and "'SPS-ID-OF-19-CHARS' cannot be carried" in e1[8]
    assert e2[2] == "IPC^1^9" and "'STATION_AE_TITLE_17'" in e2[8] and "16 characters" in e2[8]
    assert worklist_items(broker) == []
