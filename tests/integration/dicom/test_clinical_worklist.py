"""A clinical resource written through the FHIR API changes the patient's worklist items in the
same transaction: the next ``$mwl-query`` and C-FIND show the new allergy and weight; and the
FHIR ``station-aet`` search finds a step scheduled on several stations, as C-FIND does (a
running broker on SQLite and PostgreSQL, an item imported from DCMTK's example worklist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from mwl_scu import associate, find
from pydicom.dataset import Dataset
from tests.conftest import running_broker

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.fhir.model import UCUM
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, worklist_item_to_fhir
from fhirmwl.worklist.values import json_strings


def _items(http: httpx.Client, **keys: str) -> list[dict[str, Any]]:
    r = http.get(
        "Task/$mwl-query",
        params={"PatientID": "AV35674", "Allergies": "", "PatientWeight": "", **keys},
        headers={"Accept": "application/dicom+json"},
    )
    assert r.status_code == 200, r.text
    return list(r.json())


def _cfind(port: int) -> list[Dataset]:
    identifier = Dataset()
    identifier.PatientID, identifier.Allergies, identifier.PatientWeight = "AV35674", "", ""
    assoc = associate(port)
    try:
        found, final = find(assoc, identifier)
    finally:
        assoc.release()
    assert final.Status == 0x0000
    return found


def _bundle(mwl_corpus: Path) -> dict[str, Any]:
    return worklist_item_to_fhir(
        read_worklist_file(mwl_corpus / "dcmtk_wklist1.dump"),  # AA32\AA33, TANTAL
        DicomMappingContext(timezone=ZoneInfo("UTC")),
    )


def test_new_allergy_and_weight_reach_the_worklist(mwl_corpus: Path, db_url: str) -> None:
    bundle = _bundle(mwl_corpus)
    with running_broker(db_url, dicom=True, timezone="UTC") as rt:
        with httpx.Client(base_url=rt.settings.fhir_base, timeout=30) as http:
            assert http.post("", json=bundle).status_code == 200
            (item,) = _items(http)
            assert json_strings(item["00102110"]) == ["TANTAL"]  # kept from the import
            patient = http.get("Patient", params={"identifier": "AV35674"}).json()
            ref = {"reference": f"Patient/{patient['entry'][0]['resource']['id']}"}
            allergy = {
                "resourceType": "AllergyIntolerance",
                "patient": ref,
                "code": {"text": "Iodinated contrast"},
            }
            assert http.post("AllergyIntolerance", json=allergy).status_code == 201
            weight = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": ref,
                "effectiveDateTime": "2025-01-01T10:00:00Z",
                "valueQuantity": {"value": 71, "unit": "kg", "system": UCUM, "code": "kg"},
            }
            assert http.post("Observation", json=weight).status_code == 201
            (item,) = _items(http)
            assert json_strings(item["00102110"]) == ["Iodinated contrast"]
            assert json_strings(item["00101030"]) == ["71"]
        (answer,) = _cfind(rt.settings.dicom_port)
        assert answer.Allergies == "Iodinated contrast"
        assert str(answer.PatientWeight) == "71"


def test_station_aet_search_finds_multi_station_steps(mwl_corpus: Path, db_url: str) -> None:
    with (
        running_broker(db_url, timezone="UTC") as rt,
        httpx.Client(base_url=rt.settings.fhir_base, timeout=30) as http,
    ):
        assert http.post("", json=_bundle(mwl_corpus)).status_code == 200
        for station, found in (("AA32", 1), ("AA33", 1), ("AA34", 0)):
            r = http.get("Task", params={"station-aet": station})
            assert r.status_code == 200, r.text
            assert len(r.json().get("entry", [])) == found, station
