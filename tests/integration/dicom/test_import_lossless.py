"""``fhirmwl mwl import`` then ``mwl export`` through a real store keeps every attribute of
DCMTK's and Orthanc's example items; and DCMTK's 13 example queries, sent with ``findscu`` to
``wlmscpfs`` serving the original files and to ``fhirmwl serve`` holding the imported items, get
the same answers attribute for attribute (values; the Specific Character Set is each server's
own: ``wlmscpfs -csk`` answers in the file's set, fhirmwl in UTF-8)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from mwl_scu import free_port
from pydicom import dcmread
from pydicom.dataset import Dataset
from tests.conftest import running_broker
from typer.testing import CliRunner

from fhirmwl.cli_mwl import app
from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.worklist.jsoncodec import dataset_to_dict

runner = CliRunner()
ORTHANC_COMPLETE = [
    "orthanc_private-creator.dump",
    "orthanc_dcmtk360_wklist4_invalid-birthdate.dump",
    "orthancdemo_MWL_TEST.wl",
]


def _import(db: str, paths: list[Path]) -> None:
    result = runner.invoke(app, ["import", *map(str, paths), "--db", db, "--timezone", "UTC"])
    assert result.exit_code == 0, result.output


def _key(ds: Dataset) -> tuple[str, str]:
    sps = ds.ScheduledProcedureStepSequence[0]
    return str(ds.get("StudyInstanceUID", "")), str(sps.get("ScheduledProcedureStepID", ""))


@pytest.mark.parametrize("source", ["dcmtk", "orthanc"])
def test_import_then_export_keeps_every_attribute(
    mwl_corpus: Path, tmp_path: Path, source: str
) -> None:
    # Orthanc's copies reuse DCMTK's accession numbers: one store per source
    if source == "dcmtk":
        paths = sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))
    else:
        paths = [mwl_corpus / n for n in ORTHANC_COMPLETE]
    db = f"sqlite:///{tmp_path / 'wl.sqlite'}"
    _import(db, paths)
    exported = runner.invoke(app, ["export", "--out", str(tmp_path / "wl"), "--db", db])
    assert exported.exit_code == 0, exported.output
    files = sorted((tmp_path / "wl" / "FHIRMWL").glob("*.wl"))
    back = {_key(d): d for d in map(read_worklist_file, files)}
    assert len(back) == len(paths)
    for path in paths:
        original = read_worklist_file(path)
        lost = _lost(dataset_to_dict(original), dataset_to_dict(back[_key(original)]))
        assert lost == [], f"{path.name}: attributes lost or changed: {lost}"


def _lost(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Attributes of ``old`` whose value ``new`` does not have (sequences item by item)."""
    lost = []
    for tag, entry in old.items():
        if tag == "00080005":
            continue  # the answer's character set, not content
        other = new.get(tag) or {}
        if entry.get("vr") == "SQ":
            mine, theirs = entry.get("Value") or [], other.get("Value") or []
            if len(mine) != len(theirs):
                lost.append(path + tag)
            for a, b in zip(mine, theirs, strict=False):
                lost += _lost(a, b, f"{path}{tag}>")
        elif other.get("Value") != entry.get("Value"):
            lost.append(path + tag)
    return lost


def _findscu(port: int, query: Path, out: Path) -> list[Dataset]:
    out.mkdir()
    proc = subprocess.run(
        ["findscu", "-W", "-aet", "FINDSCU", "-aec", "FHIRMWL", "-X", "-od", str(out)]
        + ["127.0.0.1", str(port), str(query)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]


def _answer(ds: Dataset) -> dict[str, object]:
    """The answer without the two documented differences (docs/dicom-conformance.md §8): the
    Specific Character Set, and inside the SPS item the SPS Status (fhirmwl derives SCHEDULED
    from Task.status where the file has none, wlmscpfs adds it empty) and the SPS End Date/Time
    that wlmscpfs adds empty when a file has none."""
    data = dataset_to_dict(ds)
    data.pop("00080005", None)
    for sps in (data.get("00400100") or {}).get("Value") or []:
        sps.pop("00400020", None)
        for tag in ("00400004", "00400005"):
            if not sps.get(tag, {}).get("Value"):
                sps.pop(tag, None)
    return data


def _sorted_answers(answers: list[Dataset]) -> list[str]:
    return sorted(repr(sorted(_answer(a).items())) for a in answers)


@pytest.mark.interop
@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("wlmscpfs", "findscu", "dump2dcm")),
    reason="DCMTK wlmscpfs/findscu/dump2dcm not installed",
)
def test_dcmtk_queries_answer_like_wlmscpfs(mwl_corpus: Path, tmp_path: Path) -> None:
    items = sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))
    folder = tmp_path / "folder" / "FHIRMWL"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for path in items:
        subprocess.run(["dump2dcm", "-g", str(path), str(folder / f"{path.stem}.wl")], check=True)
    db = f"sqlite:///{tmp_path / 'wl.sqlite'}"
    _import(db, items)
    port = free_port()
    wlm = subprocess.Popen(["wlmscpfs", "-dfp", str(tmp_path / "folder"), "-csk", str(port)])
    try:
        time.sleep(0.5)
        with running_broker(db, dicom=True, timezone="UTC") as broker:
            ours = broker.settings.dicom_port
            for number in range(13):
                dump = mwl_corpus / f"dcmtk_wlistqry{number}.query.dump"
                query = tmp_path / f"q{number}.dcm"
                subprocess.run(["dump2dcm", str(dump), str(query)], check=True)
                reference = _findscu(port, query, tmp_path / f"wlm{number}")
                answers = _findscu(ours, query, tmp_path / f"ours{number}")
                assert _sorted_answers(answers) == _sorted_answers(reference), number
    finally:
        wlm.terminate()
        wlm.wait(timeout=10)
