"""``fhirmwl mwl import/export/show`` against the DCMTK example worklist; the export is read back
by DCMTK's own ``wlmscpfs`` (interop) to prove the files are usable by folder-based SCPs."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from mwl_scu import free_port
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from fhirmwl.cli_mwl import app
from fhirmwl.dicom.dumpfile import read_worklist_file

runner = CliRunner()


def _db(tmp_path: Path, mwl_corpus: Path) -> str:
    """A real store loaded through ``fhirmwl mwl import`` with the ten DCMTK example items."""
    db = f"sqlite:///{tmp_path / 'wl.sqlite'}"
    paths = [str(p) for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))]
    result = runner.invoke(app, ["import", *paths, "--db", db])
    assert result.exit_code == 0, result.output
    assert "imported 10 worklist file(s), 0 failed" in result.output
    return db


def _task_ids(db: str) -> list[str]:
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT task_id FROM worklist ORDER BY task_id")]


def test_import_writes_bundles(mwl_corpus: Path, tmp_path: Path) -> None:
    paths = [str(p) for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))]
    paths.append(str(mwl_corpus / "orthanc_issue49-latin1.wl"))
    result = runner.invoke(app, ["import", *paths, "--out", str(tmp_path), "--timezone", "UTC"])
    assert result.exit_code == 0, result.output
    bundles = sorted(tmp_path.glob("*.bundle.json"))
    assert len(bundles) == 11
    latin = json.loads((tmp_path / "orthanc_issue49-latin1.bundle.json").read_text("utf-8"))
    patient = next(
        e["resource"] for e in latin["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    assert patient["name"][0]["family"] == "VANILLÉ"


def test_show_and_export(dcmtk_items: list[Dataset], mwl_corpus: Path, tmp_path: Path) -> None:
    db = _db(tmp_path, mwl_corpus)
    task_ids = _task_ids(db)
    assert len(task_ids) == 10
    shown = runner.invoke(app, ["show", task_ids[0], "--db", db])
    assert shown.exit_code == 0 and "Patient's Name" in shown.output
    missing = runner.invoke(app, ["show", "nope", "--db", db])
    assert missing.exit_code == 1
    exported = runner.invoke(app, ["export", "--out", str(tmp_path / "wl"), "--db", db])
    assert exported.exit_code == 0, exported.output
    files = sorted((tmp_path / "wl" / "FHIRMWL").glob("*.wl"))
    assert len(files) == 10
    assert {str(read_worklist_file(f).PatientID) for f in files} == {
        str(i.PatientID) for i in dcmtk_items
    }


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("wlmscpfs") is None, reason="DCMTK wlmscpfs not installed")
def test_exported_folder_is_served_by_wlmscpfs(mwl_corpus: Path, tmp_path: Path) -> None:
    db = _db(tmp_path, mwl_corpus)
    runner.invoke(app, ["export", "--out", str(tmp_path / "wl"), "--db", str(db)])
    port = free_port()
    server = subprocess.Popen(["wlmscpfs", "-dfp", str(tmp_path / "wl"), str(port)])
    try:
        time.sleep(0.5)
        query = tmp_path / "q.dcm"
        ds = Dataset()
        ds.PatientName = "VIVALDI*"
        ds.PatientID = ""
        sps = Dataset()
        sps.Modality = ""
        ds.ScheduledProcedureStepSequence = [sps]
        ds.save_as(query, implicit_vr=True, little_endian=True)
        out = tmp_path / "rsp"
        out.mkdir()
        proc = subprocess.run(
            ["findscu", "-W", "-aec", "FHIRMWL", "-X", "-od", str(out), "127.0.0.1", str(port)]
            + [str(query)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(list(out.glob("rsp*.dcm"))) == 3
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_import_refreshes_postgresql_planner_statistics(mwl_corpus: Path, pg_url: str) -> None:
    """After a bulk import the worklist tables have statistics at once, not after autovacuum."""
    import psycopg

    paths = [str(p) for p in sorted(mwl_corpus.glob("dcmtk_wklist*.dump"))]
    result = runner.invoke(app, ["import", *paths, "--db", pg_url])
    assert result.exit_code == 0, result.output
    base, _, schema = pg_url.rpartition("schema=")
    with psycopg.connect(base.rstrip("?&")) as conn:
        analyzed = dict(
            conn.execute(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = %s",
                (schema,),
            ).fetchall()
        )
    assert analyzed["resource"] and analyzed["worklist"] and analyzed["idx_token"]
