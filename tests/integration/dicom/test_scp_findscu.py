"""DCMTK ``findscu -W`` (a real third-party SCU) against the worklist SCP over loopback.

Each DCMTK example query is converted with ``dump2dcm`` and sent with ``findscu -W -X``; the
number of answers and the top-level values must equal the reference answers in the corpus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from fhirmwl.dicom.scp import WorklistSCP
from fhirmwl.worklist.values import element_strings

pytestmark = pytest.mark.interop

needs_dcmtk = pytest.mark.skipif(
    shutil.which("findscu") is None or shutil.which("dump2dcm") is None,
    reason="DCMTK findscu/dump2dcm not installed",
)


def _run_findscu(port: int, query_dump: Path, workdir: Path) -> list[Path]:
    query = workdir / "query.dcm"
    subprocess.run(["dump2dcm", str(query_dump), str(query)], check=True, capture_output=True)
    out = workdir / "out"
    out.mkdir()
    proc = subprocess.run(
        ["findscu", "-W", "-aet", "FINDSCU", "-aec", "FHIRMWL", "-X", "-od", str(out)]
        + ["127.0.0.1", str(port), str(query)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(out.glob("rsp*.dcm"))


@needs_dcmtk
@pytest.mark.parametrize("number", [0, 1, 3, 5, 6, 10, 11])
def test_findscu_dcmtk_queries(
    dcmtk_scp: WorklistSCP, mwl_corpus: Path, tmp_path: Path, number: int
) -> None:
    expected = json.loads(
        (mwl_corpus / f"dcmtk_wlistqry{number}.query.expected.json").read_text("utf-8")
    )
    files = _run_findscu(
        dcmtk_scp.port, mwl_corpus / f"dcmtk_wlistqry{number}.query.dump", tmp_path
    )
    assert len(files) == len(expected)
    want_ids = sorted(
        line.split("[", 1)[1].rstrip("]").strip()
        for answer in expected
        for line in answer
        if line.startswith("(0010,0010)")
    )
    got = [dcmread(f) for f in files]
    assert sorted("\\".join(element_strings(d["PatientName"])) for d in got) == want_ids
    assert all(d.SpecificCharacterSet == "ISO_IR 192" for d in got)


@needs_dcmtk
def test_findscu_echo(dcmtk_scp: WorklistSCP) -> None:
    proc = subprocess.run(
        ["echoscu", "-aec", "FHIRMWL", "127.0.0.1", str(dcmtk_scp.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
