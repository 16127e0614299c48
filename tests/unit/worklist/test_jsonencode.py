"""The fast identifier encoder (``dicom.jsonencode``) against pydicom's own encoder: every corpus
item, whole and projected onto every DCMTK example query, in Implicit and Explicit VR Little
Endian and in the response character sets, decodes to the same data set as pydicom's bytes."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.dsutils import decode, encode

from fhirmwl.dicom.charset import parse_charset, prepare_json, python_codec
from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.dicom.jsonencode import NotEncodable, encode_item
from fhirmwl.worklist import WorklistQuery
from fhirmwl.worklist.jsoncodec import dataset_from_dict, dataset_to_dict
from fhirmwl.worklist.project import project_json

ITEM_GLOBS = ("dcmtk_wklist*.dump", "orthanc_*.dump", "*.wl")


def _items(corpus: Path) -> list[dict[str, Any]]:
    paths = sorted({p for g in ITEM_GLOBS for p in corpus.glob(g) if "query" not in p.name})
    return [dataset_to_dict(read_worklist_file(p)) for p in paths]


def _queries(corpus: Path) -> list[WorklistQuery]:
    paths = sorted(corpus.glob("dcmtk_wlistqry*.query.dump"))
    return [WorklistQuery(), *(WorklistQuery.from_dataset(read_worklist_file(p)) for p in paths)]


def _decoded(data: bytes, implicit: bool) -> dict[str, Any]:
    return dataset_to_dict(decode(BytesIO(data), implicit, True))


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100", "ISO_IR 6"])
@pytest.mark.parametrize("implicit", [True, False])
def test_same_data_set_as_pydicom(mwl_corpus: Path, implicit: bool, charset: str) -> None:
    terms = parse_charset(charset)
    codec = python_codec(terms)
    assert codec is not None
    compared = 0
    for item in _items(mwl_corpus):
        for q in _queries(mwl_corpus):
            answer, _ = prepare_json(project_json(item, q) if q.keys else item, terms)
            reference = encode(dataset_from_dict(answer), implicit, True)
            assert reference is not None
            ours = encode_item(answer, implicit, codec)
            assert _decoded(ours, implicit) == _decoded(reference, implicit)
            compared += 1
    assert compared > 100


def test_iso2022_is_left_to_pydicom() -> None:
    assert python_codec(parse_charset("\\ISO 2022 IR 87")) is None
    assert python_codec(["ISO_IR 192"]) == "UTF8"


def test_value_too_long_for_explicit_vr() -> None:
    item = {"00081030": {"vr": "LO", "Value": ["X" * 70000]}}
    assert len(encode_item(item, True, "utf-8")) > 70000  # implicit: 4-byte length
    with pytest.raises(NotEncodable):
        encode_item(item, False, "utf-8")
