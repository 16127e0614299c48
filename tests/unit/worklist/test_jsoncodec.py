"""The fast item decoder gives the same datasets as pydicom's ``Dataset.from_json``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.worklist import worklist_row
from fhirmwl.worklist.jsoncodec import dataset_to_dict, item_from_json


@pytest.mark.parametrize("pattern", ["*.dump", "*.wl"])
def test_same_as_pydicom_on_corpus(mwl_corpus: Path, pattern: str) -> None:
    paths = sorted(mwl_corpus.glob(pattern))
    assert paths
    for path in paths:
        item_json = worklist_row(read_worklist_file(path), "t")["item_json"]
        assert dataset_to_dict(read_worklist_file(path)) == read_worklist_file(path).to_json_dict()
        ours, reference = item_from_json(item_json), Dataset.from_json(item_json)
        assert ours == reference, path.name  # DS compare by value: we keep "100", pydicom "100.0"


def test_person_name_groups_and_numbers() -> None:
    ds = Dataset()
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.PregnancyStatus = 4
    ds.PatientWeight = "72.5"
    ds.MedicalAlerts = ["A", "B"]
    item_json = worklist_row(ds, "t")["item_json"]
    assert item_from_json(item_json) == Dataset.from_json(item_json)
    assert str(item_from_json(item_json).PatientWeight) == "72.5"
