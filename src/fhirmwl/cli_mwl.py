"""``fhirmwl mwl …``: import folder worklists into FHIR, export the worklist as files, show one
item as a modality would receive it.

``import`` is the migration path from DCMTK ``wlmscpfs`` / Orthanc worklist folders: every
``.wl`` (Part 10) and ``.dump`` (DCMTK text) file becomes one FHIR transaction Bundle. Until the
lead wires the store in (see :func:`configure`), bundles are printed or written to ``--out``.
``export`` writes ``.wl`` files in the folder layout ``wlmscpfs`` reads (``DIR/AE/*.wl`` plus a
``lockfile``), for interop and side-by-side benchmarks.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, worklist_item_to_fhir
from fhirmwl.worklist import SqlWorklistSource, WorklistQuery, WorklistSource

app = typer.Typer(help="DICOM Modality Worklist tools", no_args_is_help=True)

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"
WORKLIST_SUFFIXES = (".wl", ".dump", ".dcm")
SPS_KEYWORD = "ScheduledProcedureStepSequence"

# Hooks the lead wires to the store (cli.py / runtime): bundle submitter, worklist source and
# a task-id lookup. Defaults let the commands run against a SQLite file with a worklist table.
_hooks: dict[str, Any] = {"submit": None, "source": None, "lookup": None}


def configure(
    submit: Callable[[dict[str, Any]], Any] | None = None,
    source_factory: Callable[[], WorklistSource] | None = None,
    item_lookup: Callable[[str], Dataset | None] | None = None,
) -> None:
    """Plug the store in: ``submit`` posts a transaction Bundle, ``source_factory`` gives the
    worklist, ``item_lookup`` returns the stored item of a Task id."""
    _hooks.update(submit=submit, source=source_factory, lookup=item_lookup)


def iter_worklist_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in WORKLIST_SUFFIXES)
        else:
            yield path


def import_files(
    paths: Iterable[Path], ctx: DicomMappingContext
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(file, transaction Bundle)`` for each worklist file."""
    for path in iter_worklist_files(paths):
        yield path, worklist_item_to_fhir(read_worklist_file(path), ctx)


def write_wl(item: Dataset, path: Path) -> None:
    """Write one item as a Part-10 file (``wlmscpfs``/Orthanc read these)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MWL_FIND_SOP_CLASS)
    sps_ids = [str(s.get("ScheduledProcedureStepID") or "") for s in item.get(SPS_KEYWORD) or []]
    seed = f"{item.get('StudyInstanceUID', '')}|{'|'.join(sps_ids)}|{path.name}"
    meta.MediaStorageSOPInstanceUID = UID(f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, seed).int}")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = Dataset()
    out.update(item)
    out.file_meta = meta
    out.save_as(path, enforce_file_format=True)


def export_items(source: WorklistSource, out: Path, ae_title: str) -> int:
    """Write every worklist item to ``out/ae_title/NNNNNN.wl``; returns the count."""
    folder = out / ae_title
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lockfile").touch()
    count = 0
    for count, item in enumerate(source.find(WorklistQuery()), start=1):
        write_wl(item, folder / f"{count:06d}.wl")
    return count


def _sqlite_source(db: Path) -> SqlWorklistSource:
    return SqlWorklistSource(sqlite3.connect(db))


def _sqlite_lookup(db: Path, task_id: str) -> Dataset | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT item_json FROM worklist WHERE task_id = ?", (task_id,)
        ).fetchone()
    return Dataset.from_json(row[0]) if row else None


_TZ = typer.Option("UTC", "--timezone", help="the modalities' wall clock (IANA zone)")
_DB = typer.Option(None, "--db", help="SQLite file holding a worklist table (until the store)")


@app.command("import")
def import_command(
    paths: list[Path] = typer.Argument(..., help=".wl / .dump files or folders"),
    out: Path | None = typer.Option(None, "--out", help="write one Bundle JSON per file here"),
    timezone: str = _TZ,
) -> None:
    """Turn DICOM worklist files into FHIR transaction Bundles (and submit them if wired)."""
    ctx = DicomMappingContext(timezone=ZoneInfo(timezone))
    submit = _hooks["submit"]
    count = 0
    for path, bundle in import_files(paths, ctx):
        count += 1
        if submit is not None:
            submit(bundle)
        elif out is not None:
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{path.stem}.bundle.json"
            target.write_text(json.dumps(bundle, indent=2, ensure_ascii=False), "utf-8")
        else:
            typer.echo(json.dumps(bundle, ensure_ascii=False))
    typer.echo(f"imported {count} worklist file(s)", err=True)


@app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="target folder"),
    ae_title: str = typer.Option("FHIRMWL", "--ae-title", help="sub-folder (called AE title)"),
    db: Path | None = _DB,
) -> None:
    """Write the current worklist as .wl files (DCMTK wlmscpfs / Orthanc folder layout)."""
    factory = _hooks["source"]
    if factory is None and db is None:
        raise typer.BadParameter("no worklist source: pass --db or run inside fhirmwl")
    source = factory() if factory is not None else _sqlite_source(db)  # type: ignore[arg-type]
    typer.echo(f"exported {export_items(source, out, ae_title)} item(s) to {out / ae_title}")


@app.command("show")
def show_command(
    task_id: str,
    as_json: bool = typer.Option(False, "--json", help="DICOM JSON instead of text"),
    db: Path | None = _DB,
) -> None:
    """Print the dataset a modality would receive for one Task."""
    lookup = _hooks["lookup"]
    if lookup is None and db is None:
        raise typer.BadParameter("no worklist source: pass --db or run inside fhirmwl")
    item = lookup(task_id) if lookup is not None else _sqlite_lookup(db, task_id)  # type: ignore[arg-type]
    if item is None:
        typer.echo(f"no worklist item for Task {task_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(item.to_json_dict(), indent=2) if as_json else str(item))
