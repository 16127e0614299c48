"""Every corpus message is processed without a crash and gets the expected ACK; FHIR-Converter's
expected outputs agree with ours on the facts (identifiers, names, codes, dates)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from fhirmwl.fhir.dates import date_range
from fhirmwl.fhir.model import FILL, PLAC, PROFILE_ISR, identifier_of_type
from fhirmwl.mapping.v2_to_fhir import AdtMessage, MappingContext, OrderMessage
from fhirmwl.mapping.v2_to_fhir.intake import evaluate

# file → (MSA-1, table 0357 code or None). Rationale per line in docs/hl7v2.md "Corpus outcomes".
EXPECTED_ACK: dict[str, tuple[str, str | None]] = {
    "dcm4che_ADT-A31-UpdatePersonInfo.hl7": ("AA", None),
    "dcm4che_ADT-A31-Veterinary.hl7": ("AA", None),
    "dcm4che_ADT-A40-PatientMerge.hl7": ("AA", None),
    "dcm4che_ADT-A47-ChangePatientID.hl7": ("AA", None),
    "dcm4che_OMG-O19-Eyecare.hl7": ("AA", None),
    "dcm4che_OMI-O23-ImagingOrder.hl7": ("AA", None),
    "dcm4che_ORM-O01-GeneralOrder_mislabeled-OMI.hl7": ("AA", None),
    "hapi_BAR-P01_malformed-MSH2-3chars.hl7": ("AR", "200"),
    "hapi_ORM-O01_v22_CR_cancelled-as-requested_elbow.hl7": ("AA", None),
    "hapi_ORM-O01_v22_NW_CT-biopsy.hl7": ("AA", None),
    "hapi_ORM-O01_v22_XR_change-order_knee.hl7": ("AA", None),
    "lfh_sample_win_malformed_ADT-A01.hl7": ("AR", "102"),
    "msftconv_ADT-A08-01.hl7": ("AA", None),
    "msftconv_ADT-A40-01.hl7": ("AA", None),
    "msftconv_ADT-A40-02.hl7": ("AA", None),
    "msftconv_OMG-O19-01.hl7": ("AE", "101"),
    "msftconv_ORM-O01-01.hl7": ("AA", None),
    "msftconv_ORM-O01-02.hl7": ("AA", None),
    "msftconv_ORM-O01-03.hl7": ("AA", None),
    "msftconv_ORM-O01-04.hl7": ("AE", "101"),
    "msftconv_ORM-O01-05.hl7": ("AE", "101"),
    "ssmix2_ADT-00_patient-update_A08_ISO2022JP.hl7": ("AA", None),
    "ssmix2_OMG-01_radiology-order_ISO2022JP.hl7": ("AA", None),
    "ssmix2_OMG-02_endoscopy-order_bad-MSH18.hl7": ("AA", None),
    "ssmix2_OMG-11_radiology-performed_OMI-Z23_ISO2022JP.hl7": ("AR", "201"),
    "tw_OMI-O23_UTF8-CJK-name_minimal.hl7": ("AA", None),
    "v2tofhir_ORM-O01_IG-benchmark_5char-MSH2.hl7": ("AA", None),
}


def _ctx() -> MappingContext:
    n = count(1)
    return MappingContext(
        clock=lambda: datetime(2025, 1, 1, tzinfo=UTC), new_uuid=lambda: uuid.UUID(int=next(n))
    )


def _files(corpus: Path) -> list[Path]:
    return sorted((corpus / "hl7").glob("*.hl7"))


def test_every_corpus_message_gets_its_expected_ack(corpus: Path) -> None:
    files = _files(corpus)
    assert files
    for path in files:
        result = evaluate(path.read_bytes(), _ctx())
        code, err = EXPECTED_ACK.get(path.name, ("AA", None))
        assert result.ack_code == code, (path.name, result.error)
        lines = result.ack.decode(result.message.codec if result.message else "ascii").split("\r")
        assert lines[1].startswith(f"MSA|{code}|")
        if err is None:
            assert result.mapped is not None and not any(x.startswith("ERR") for x in lines)
        else:
            assert result.error is not None and result.error.hl7_code == err
            assert any(x.startswith("ERR|") and f"|{err}^" in x for x in lines), path.name


def _instant(value: str) -> str:
    return date_range(value)[0]


def _bundle_resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _compare_patient(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    our_values = {i["value"] for i in ours["identifier"]}
    their_values = {i.get("value") for i in theirs["identifier"]}
    assert our_values and our_values <= their_values
    assert ours["name"][0]["family"] == theirs["name"][0]["family"]
    assert ours["name"][0]["given"][0] == theirs["name"][0]["given"][0]
    assert ours.get("birthDate") == theirs.get("birthDate")
    assert ours.get("gender") == theirs.get("gender")


@pytest.mark.parametrize("name", ["ORM-O01-01", "ORM-O01-02", "ORM-O01-03"])
def test_orders_agree_with_fhir_converter(corpus: Path, name: str) -> None:
    base = corpus / "hl7" / f"msftconv_{name}"
    result = evaluate(base.with_suffix(".hl7").read_bytes(), _ctx())
    assert isinstance(result.mapped, OrderMessage)
    theirs = json.loads(base.with_suffix(".expected.json").read_text())
    ours = result.mapped.bundle
    _compare_patient(_bundle_resources(ours, "Patient")[0], _bundle_resources(theirs, "Patient")[0])
    their_srs = _bundle_resources(theirs, "ServiceRequest")
    our_isrs = [
        r for r in _bundle_resources(ours, "ServiceRequest") if PROFILE_ISR in r["meta"]["profile"]
    ]
    assert len(our_isrs) == len(their_srs)
    for isr, sr in zip(our_isrs, their_srs, strict=True):
        for code in (PLAC, FILL):
            assert identifier_of_type(isr, code)["value"] == identifier_of_type(sr, code)["value"]  # type: ignore[index]
        our_codes = {c["code"] for c in isr["code"]["concept"]["coding"]}
        assert our_codes == {c["code"] for c in sr["code"]["coding"]}
        assert _instant(isr["authoredOn"]) == _instant(sr["authoredOn"])
    our_visit = _bundle_resources(ours, "Encounter")[0]["identifier"][0]["value"]
    assert our_visit in {
        i["value"] for e in _bundle_resources(theirs, "Encounter") for i in e["identifier"]
    }


def test_adt_a08_agrees_with_fhir_converter(corpus: Path) -> None:
    base = corpus / "hl7" / "msftconv_ADT-A08-01"
    result = evaluate(base.with_suffix(".hl7").read_bytes(), _ctx())
    assert isinstance(result.mapped, AdtMessage)
    theirs = json.loads(base.with_suffix(".expected.json").read_text())
    cmd = result.mapped.commands[0]
    _compare_patient(cmd.patient, _bundle_resources(theirs, "Patient")[0])
    assert cmd.bundle is not None
    urls = [e["request"]["url"] for e in cmd.bundle["entry"]]
    assert urls[0].startswith("Patient?identifier=") and urls[1].startswith("Encounter?identifier=")
    their_visits = {
        i["value"] for e in _bundle_resources(theirs, "Encounter") for i in e["identifier"]
    }
    assert cmd.encounter is not None and cmd.encounter["identifier"][0]["value"] in their_visits


@pytest.mark.parametrize("name", ["ADT-A40-01", "ADT-A40-02"])
def test_merges_agree_with_fhir_converter_linkage(corpus: Path, name: str) -> None:
    base = corpus / "hl7" / f"msftconv_{name}"
    result = evaluate(base.with_suffix(".hl7").read_bytes(), _ctx())
    assert isinstance(result.mapped, AdtMessage)
    items = _bundle_resources(
        json.loads(base.with_suffix(".expected.json").read_text()), "Linkage"
    )[0]["item"]
    pairs = [
        (items[i]["resource"]["identifier"], items[i + 1]["resource"]["identifier"])
        for i in range(0, len(items), 2)
    ]
    assert len(pairs) == len(result.mapped.commands)
    for cmd, (source, historical) in zip(result.mapped.commands, pairs, strict=True):
        assert cmd.identifier["value"] == source["value"]
        assert cmd.prior_identifier is not None
        assert cmd.prior_identifier["value"] == historical["value"]
        # Systems differ by design (docs/hl7v2.md): both are derived from the CX-4 namespace.
        assert cmd.identifier["system"].endswith("BCBS") and source["system"].endswith("BCBS")


def test_dcm4che_omi_fields_land_where_the_worklist_reads_them(corpus: Path) -> None:
    raw = (corpus / "hl7" / "dcm4che_OMI-O23-ImagingOrder.hl7").read_bytes()
    result = evaluate(raw, _ctx())
    assert isinstance(result.mapped, OrderMessage)
    group = result.mapped.groups[0]
    assert group.accession[1] == "AccessionNumber" and not group.accession_generated
    assert group.requested_procedure_ids == ["RequestedProcID"]
    assert group.sps_ids == ["ScheduledProcStepID"]
    assert group.study_instance_uids == ["1.2.392.200036.9125.0.198811291108.7"]
    devices = _bundle_resources(result.mapped.bundle, "Device")
    assert [d["name"][0]["value"] for d in devices] == [
        "ScheduledStationAET1",
        "ScheduledStationAET2",
    ]
    task = _bundle_resources(result.mapped.bundle, "Task")[0]
    assert task["input"][0]["valueCodeableConcept"]["coding"][0]["code"] == "CT"
    assert task["requestedPeriod"]["start"] == "2000-08-16T15:10:00+00:00"
    isr = _bundle_resources(result.mapped.bundle, "ServiceRequest")[0]
    assert "–35" in isr["reason"][0]["concept"]["coding"][0]["display"]  # UTF-8 in an 8859/1 msg
