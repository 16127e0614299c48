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


def test_sparse_decode_answers_like_full_decode(mwl_corpus: Path) -> None:
    """Decoding only a query's keys (the C-FIND path) gives the same matches and the same
    projected answers as decoding whole items, for every DCMTK example query and item."""
    from fhirmwl.worklist import WorklistQuery, matches, project

    items = [
        worklist_row(read_worklist_file(p), "t")["item_json"]
        for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))
    ]
    queries = sorted(mwl_corpus.glob("dcmtk_wlistqry*.query.dump"))
    assert items and queries
    compared = 0
    for query_path in queries:
        q = WorklistQuery.from_dataset(read_worklist_file(query_path))
        for text in items:
            full, sparse = item_from_json(text), item_from_json(text, q)
            assert matches(q, full) == matches(q, sparse), query_path.name
            if matches(q, full):
                assert project(full, q) == project(sparse, q), query_path.name
                compared += 1
    assert compared > 10
