"""``fhirmwl mwl …``: import folder worklists into FHIR, export the worklist as files, show one
item as a modality would receive it.

``import`` is the migration path from DCMTK ``wlmscpfs`` / Orthanc worklist folders: every
``.wl`` (Part 10) and ``.dump`` (DCMTK text) file becomes one FHIR transaction Bundle, applied
to the store like any other transaction (so the worklist index follows); ``--out`` only writes
the Bundles for inspection.
``export`` writes ``.wl`` files in the folder layout ``wlmscpfs`` reads (``DIR/AE/*.wl`` plus a
``lockfile``), for interop and side-by-side benchmarks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.errors import FhirMwlError
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, worklist_item_to_fhir
from fhirmwl.store import Store
from fhirmwl.worklist import WorklistQuery, WorklistSource

app = typer.Typer(help="DICOM Modality Worklist tools", no_args_is_help=True)

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"
WORKLIST_SUFFIXES = (".wl", ".dump", ".dcm")
SPS_KEYWORD = "ScheduledProcedureStepSequence"


def _services(db: str | None, config: Path | None) -> Any:
    """The broker's services over the configured database (the same store ``serve`` uses)."""
    from fhirmwl.config import load_settings
    from fhirmwl.wiring import build_services

    return build_services(load_settings(config, db=db))


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


_TZ = typer.Option("UTC", "--timezone", help="the modalities' wall clock (IANA zone)")


def analyze(store: Store) -> None:
    """Refresh PostgreSQL's planner statistics of the store's tables after a bulk load.

    Until autovacuum gets to freshly loaded tables (a minute or more), PostgreSQL plans the
    worklist and search queries as if the tables were empty: a date and modality search took
    90 ms instead of 2 ms after a load of 2,000 orders (docs/benchmarks.md). SQLite's planner
    statistics are fixed by a migration and are left as they are.
    """
    if store.db.dialect != "postgresql":
        return
    with store.write() as tx:
        tables = tx.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
        for (table,) in tables:
            tx.conn.execute(f'ANALYZE "{table}"')


@app.command("import")
def import_command(
    paths: list[Path] = typer.Argument(..., help=".wl / .dump files or folders"),
    out: Path | None = typer.Option(None, "--out", help="only write one Bundle JSON per file here"),
    timezone: str = _TZ,
    db: str | None = _DB,
    config: Path | None = _CONFIG,
) -> None:
    """Load DICOM worklist files into the FHIR store (or, with --out, only write the Bundles)."""
    ctx = DicomMappingContext(timezone=ZoneInfo(timezone))
    services = None if out is not None else _services(db, config)
    count = failed = 0
    try:
        for path, bundle in import_files(paths, ctx):
            if services is None:
                assert out is not None
                out.mkdir(parents=True, exist_ok=True)
                target = out / f"{path.stem}.bundle.json"
                target.write_text(json.dumps(bundle, indent=2, ensure_ascii=False), "utf-8")
                count += 1
                continue
            try:
                services.bundles.process(bundle, services.settings.fhir_base, None)
                count += 1
            except FhirMwlError as err:
                failed += 1
                typer.echo(f"{path}: not imported: {err.message}", err=True)
        if services is not None and count:
            analyze(services.store)
    finally:
        if services is not None:
            services.close()
    typer.echo(f"imported {count} worklist file(s), {failed} failed", err=True)
    if failed:
        raise typer.Exit(1)


@app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="target folder"),
    ae_title: str = typer.Option("FHIRMWL", "--ae-title", help="sub-folder (called AE title)"),
    db: str | None = _DB,
    config: Path | None = _CONFIG,
) -> None:
    """Write the current worklist as .wl files (DCMTK wlmscpfs / Orthanc folder layout)."""
    services = _services(db, config)
    try:
        count = export_items(services.worklist(), out, ae_title)
    finally:
        services.close()
    typer.echo(f"exported {count} item(s) to {out / ae_title}")


@app.command("show")
def show_command(
    task_id: str,
    as_json: bool = typer.Option(False, "--json", help="DICOM JSON instead of text"),
    db: str | None = _DB,
    config: Path | None = _CONFIG,
) -> None:
    """Print the dataset a modality would receive for one Task."""
    services = _services(db, config)
    try:
        item = services.worklist().item(task_id)
    finally:
        services.close()
    if item is None:
        typer.echo(f"no worklist item for Task {task_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(item.to_json_dict(), indent=2) if as_json else str(item))
