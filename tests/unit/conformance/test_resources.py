"""Every shipped conformance resource is valid R5, regenerable, findable, and consistent."""

from __future__ import annotations

import json

import pytest
from fhir.resources import get_fhir_model_class
from pydicom.datadict import dictionary_VR, keyword_for_tag

from fhirmwl.conformance import build, registry
from fhirmwl.fhir.model import CANON, PROFILE_SPS
from fhirmwl.validation.compiler import compiled

ALL = registry.load_all()


@pytest.mark.parametrize("resource", ALL, ids=[build.file_name(r) for r in ALL])
def test_parses_as_r5(resource: dict) -> None:
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    assert resource["url"].startswith(CANON + "/")
    assert resource["status"] == "draft" and resource["experimental"] is True


def test_committed_json_matches_definitions() -> None:
    built = {build.file_name(r): build.render(r) for r in build.build_all()}
    shipped = {p.name: p.read_text(encoding="utf-8") for p in build.RESOURCE_DIR.glob("*.json")}
    assert shipped == built, "run: python -m fhirmwl.conformance.build"


def test_expected_inventory() -> None:
    kinds = {}
    for r in ALL:
        kinds.setdefault(r["resourceType"], set()).add(r["id"])
    assert len(kinds["StructureDefinition"]) == 9
    assert kinds["OperationDefinition"] == {
        "create-order",
        "cancel-order",
        "update-order",
        "mwl-query",
    }
    assert kinds["SearchParameter"] == {"requested-period", "modality", "station-aet"}
    assert kinds["CapabilityStatement"] == {"order-placer", "image-manager"}
    assert kinds["ConceptMap"] == {"fhir-to-dicom-mwl", "v2-to-fhir-order"}


def test_registry_get_and_search() -> None:
    assert registry.get("StructureDefinition", PROFILE_SPS)["id"] == (
        "imaging-scheduled-procedure-step"
    )
    assert registry.get("StructureDefinition", PROFILE_SPS + "|0.1.0") is not None
    assert [r["id"] for r in registry.search("OperationDefinition", {"name": "cancel"})] == [
        "cancel-order"
    ]
    assert len(registry.search("ValueSet", {"status": "draft"})) == 1
    assert registry.search("StructureDefinition", {"_id": "imaging-patient,imaging-visit"})
    with pytest.raises(KeyError):
        registry.search("ValueSet", {"bogus": "x"})
    copy = registry.get("ValueSet", "dicom-cid-33-modality")
    copy["status"] = "retired"
    assert registry.get("ValueSet", "dicom-cid-33-modality")["status"] == "draft"


def test_every_canonical_reference_resolves() -> None:
    text = json.dumps(ALL)
    for r in ALL:
        if r["resourceType"] == "StructureDefinition":
            assert compiled(r["url"]) is not None
    for sd in (r for r in ALL if r["resourceType"] == "StructureDefinition"):
        for element in sd["differential"]["element"]:
            for t in element.get("type", []):
                for url in t.get("targetProfile", []) + t.get("profile", []):
                    assert registry.get("StructureDefinition", url), url
            if "binding" in element:
                assert registry.get("ValueSet", element["binding"]["valueSet"])
    assert "http://tbd" not in text and "ftp://" not in text


def test_mwl_conceptmap_rows_agree_with_dicom_dictionary() -> None:
    rows = registry.conceptmap_rows("fhir-to-dicom-mwl")
    assert len(rows) >= 40
    for source, keyword, tag in rows:
        assert keyword_for_tag(int(tag, 16)) == keyword, (source, keyword, tag)
        assert dictionary_VR(int(tag, 16))
    keywords = {k for _, k, _ in rows}
    for required in (
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "Modality",
        "ScheduledProcedureStepID",
        "RequestedProcedureID",
        "AccessionNumber",
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "AdmissionID",
    ):
        assert required in keywords


def test_v2_conceptmap_rows_point_at_profiles() -> None:
    rows = registry.conceptmap_rows("v2-to-fhir-order")
    fields = {f for f, _, _ in rows}
    assert {"OBR-18", "OBR-19", "OBR-20", "IPC-1", "IPC-9", "ZDS-1", "PV1-19"} <= fields
    for _, path, profile in rows:
        base = profile.removeprefix("http://hl7.org/fhir/StructureDefinition/")
        if base != profile:  # a core resource (AllergyIntolerance, Observation, Flag)
            assert path.startswith(base + ".")
            continue
        sd = registry.get("StructureDefinition", profile)
        assert sd and path.startswith(sd["type"] + ".")
    with pytest.raises(KeyError):
        registry.conceptmap_rows("nope")
