"""Orthanc's worklist scenarios (corpus ``orthanc_*``): veterinary items and group lengths, AE
filtering, private tags, character sets.

Justified differences from Orthanc: characters the response set cannot hold are replaced by
``?`` (Orthanc drops them), because a visible placeholder is safer on a modality console than a
silently shortened name. Sparse items (``orthanc_vet_*``) are answered like Orthanc does —
``wlmscpfs`` ignores them as incomplete; the broker never builds such items itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from fhirmwl.dicom.charset import parse_charset, prepare_json
from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.worklist import InMemorySource, WorklistQuery, project
from fhirmwl.worklist.project import project_json
from fhirmwl.worklist.source import sqlite_source_from_items
from fhirmwl.worklist.values import pn_text


def _load(corpus: Path, *names: str) -> list[Dataset]:
    return [read_worklist_file(corpus / n) for n in names]


def _count(items: list[Dataset], q: WorklistQuery) -> tuple[int, int]:
    memory = len(list(InMemorySource(items).find(q)))
    sql = len(list(sqlite_source_from_items((str(i), d) for i, d in enumerate(items)).find(q)))
    return memory, sql


@pytest.mark.parametrize(
    "query", ["orthanc_query_7814_no-group-lengths", "orthanc_query_7814_with-group-lengths"]
)
def test_vet_group_lengths(mwl_corpus: Path, query: str) -> None:
    scenario = json.loads((mwl_corpus / "orthanc_vet_scenario.expected.json").read_text("utf-8"))
    items = _load(mwl_corpus, *scenario["database"])
    q = WorklistQuery.from_dataset(read_worklist_file(mwl_corpus / f"{query}.query.dump"))
    expected = scenario["queries"][f"{query}.query.dump"]["expected_answer_count"]
    assert _count(items, q) == (expected, expected)


def test_aet_filter(mwl_corpus: Path) -> None:
    items = _load(mwl_corpus, "orthanc_vet_7814.dump", "orthanc_7814_other-station.dump")
    identifier = read_worklist_file(mwl_corpus / "orthanc_query_7814_no-station-aet.query.dump")
    q = WorklistQuery.from_dataset(identifier)
    assert _count(items, q) == (2, 2)
    assert _count(items, q.with_station("ORTHANCTEST")) == (1, 1)
    with_aet = read_worklist_file(mwl_corpus / "orthanc_query_7814_with-group-lengths.query.dump")
    other = items[1:]
    assert _count(other, WorklistQuery.from_dataset(with_aet)) == (0, 0)
    del with_aet.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
    assert _count(other, WorklistQuery.from_dataset(with_aet)) == (1, 1)


def test_private_creator(mwl_corpus: Path) -> None:
    items = _load(mwl_corpus, "orthanc_private-creator.dump")
    identifier = read_worklist_file(mwl_corpus / "orthanc_private-creator.query.dump")
    q = WorklistQuery.from_dataset(identifier)
    (item,) = InMemorySource(items).find(q)
    answer = project(item, q)
    assert str(answer[0x80011001].value) == "ONCO^FRANCO"


def test_utf8_wildcard_query(mwl_corpus: Path) -> None:
    items = _load(mwl_corpus, "orthanc_encodings_utf8.dump")
    q = WorklistQuery.from_dataset(
        read_worklist_file(mwl_corpus / "orthanc_encodings_utf8.query.dump")
    )
    assert _count(items, q) == (1, 1)


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 6", "VANILL?^LAURA^^^Mme"),
        ("ISO_IR 192", "VANILLÉ^LAURA^^^Mme"),
        ("ISO_IR 100", "VANILLÉ^LAURA^^^Mme"),
    ],
)
def test_issue49_latin1(mwl_corpus: Path, charset: str, name: str) -> None:
    items = _load(mwl_corpus, "orthanc_issue49-latin1.wl")
    q = WorklistQuery.from_dataset(
        read_worklist_file(mwl_corpus / "orthanc_issue49-latin1.query.dump")
    )
    (item,) = InMemorySource(items).find_json(q)
    answer, replaced = prepare_json(project_json(item, q), parse_charset(charset))
    assert pn_text(answer["00100010"]["Value"][0]) == name
    assert replaced == (["PatientName"] if charset == "ISO_IR 6" else [])
    assert [k for k in answer if k != "00080005"] == ["00100010"]
    # the stored item is never modified
    assert pn_text(item["00100010"]["Value"][0]) == "VANILLÉ^LAURA^^^Mme"
