"""The item builder writes DICOM JSON directly (``JsonDataset``); what it writes is exactly what
the same attribute sets on a pydicom ``Dataset`` encode to (``dataset_to_dict``): per value kind,
and for whole items built from the unit graphs, the clinical graph and the DCMTK corpus
(imported and rebuilt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset
from tests.unit.mapping_dicom.test_build_item import graph

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.mapping.fhir_to_dicom import (
    DicomMappingContext,
    build_worklist_item_result,
    clinical,
    datatypes,
    graphs_from_bundle,
    item,
    worklist_item_to_fhir,
)
from fhirmwl.mapping.fhir_to_dicom.jsonds import JsonDataset
from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.worklist.jsoncodec import dataset_to_dict

GOLDEN_CLINICAL = Path(__file__).parents[1] / "mapping_v2" / "golden" / "omi_clinical.hl7"


class _Reference(Dataset):
    """The pydicom path the builder used before: a Dataset, encoded afterwards."""

    def to_dict(self) -> dict[str, Any]:
        return dataset_to_dict(self)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientID", "P1"),
        ("PatientID", "A\\B"),  # LO splits on a backslash
        ("ImagingServiceRequestComments", "a\\b"),  # LT keeps it
        ("PatientName", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("PatientName", None),
        ("PatientName", ""),
        ("ScheduledStationAETitle", ["CT1", "CT2"]),
        ("ScheduledStationAETitle", ["CT1"]),
        ("Allergies", ["a", "b"]),
        ("PatientWeight", "70.5"),
        ("PatientWeight", "70"),
        ("PatientSize", "1.8"),
        ("PregnancyStatus", 4),
        ("PatientBirthDate", "19700102"),
        ("ScheduledProcedureStepStartTime", "153000"),
        ("ReferencedStudySequence", []),
    ],
)
def test_one_attribute_encodes_like_pydicom(keyword: str, value: Any) -> None:
    ours, theirs = JsonDataset(), Dataset()
    setattr(ours, keyword, value)
    setattr(theirs, keyword, value)
    assert ours.to_dict() == dataset_to_dict(theirs)


def _both(build: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    ours = build()
    with monkeypatch.context() as m:
        for module in (item, datatypes, clinical):
            m.setattr(module, "JsonDataset", _Reference)
        theirs = build()
    return ours, theirs


def test_whole_items_encode_like_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = DicomMappingContext(timezone=ZoneInfo("Asia/Tokyo"))
    for g in (graph(), graph(status="in-progress"), graph(note=[{"text": "x\\y"}])):
        ours, theirs = _both(lambda g=g: build_worklist_item_result(g, ctx).item, monkeypatch)
        assert ours is not None and ours == theirs


def test_clinical_item_encodes_like_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    result = evaluate(GOLDEN_CLINICAL.read_bytes(), MappingContext(timezone="Europe/Berlin"))
    assert result.mapped is not None
    (g,) = graphs_from_bundle(result.mapped.bundle)
    ctx = DicomMappingContext(timezone=ZoneInfo("Europe/Berlin"))
    ours, theirs = _both(lambda: build_worklist_item_result(g, ctx).item, monkeypatch)
    assert ours is not None and ours == theirs
    assert "00102110" in ours and "00101030" in ours  # Allergies, Patient's Weight


def test_dcmtk_corpus_items_encode_like_pydicom(
    mwl_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = DicomMappingContext(timezone=ZoneInfo("UTC"))
    paths = sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))
    assert paths
    for path in paths:
        (g,) = graphs_from_bundle(worklist_item_to_fhir(read_worklist_file(path), ctx))
        ours, theirs = _both(lambda g=g: build_worklist_item_result(g, ctx).item, monkeypatch)
        assert ours is not None and ours == theirs, path.name
