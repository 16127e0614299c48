"""Backup and restore.

SQLite: ``backup`` uses SQLite's online backup API (``sqlite3.Connection.backup``), which copies a
consistent snapshot page by page while the broker keeps serving (WAL readers and writers are not
blocked for the whole copy); ``restore`` copies a backup file into place the same way and then
applies any migration the running code has that the backup lacks.

PostgreSQL: the right tool is ``pg_dump`` / ``pg_restore`` (consistent snapshots, parallel
restore, roles and grants); re-implementing them would be worse. ``backup`` checks the schema
and prints the exact commands for the configured database and schema.
"""

from __future__ import annotations

import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fhirmwl.errors import BadRequest
from fhirmwl.store.db import SqliteDatabase, open_database


@dataclass(frozen=True)
class BackupResult:
    path: Path | None
    schema_version: int
    message: str


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.DatabaseError:
        raise BadRequest("not a fhirmwl database (no schema_migrations table)") from None
    return int(row[0] or 0)


def _sqlite_path(url: str) -> str:
    db = open_database(url)
    try:
        if not isinstance(db, SqliteDatabase):
            raise BadRequest("not a SQLite database URL")
        return db.path
    finally:
        db.close()


def _pg_parts(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = (query.pop("schema", [None]) or [None])[0]
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
    return parts._replace(query=rest).geturl(), schema


def backup(url: str, out: Path, *, force: bool = False) -> BackupResult:
    """Write a consistent copy of a SQLite store to ``out``; for PostgreSQL, say how."""
    if urlsplit(url).scheme in ("postgresql", "postgres"):
        return _pg_backup(url, out)
    source_path = _sqlite_path(url)
    if not Path(source_path).exists():
        raise BadRequest(f"no database at {source_path}")
    if out.exists() and not force:
        raise BadRequest(f"{out} exists; use --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(source_path)
    try:
        version = _schema_version(source)
        target = sqlite3.connect(tmp)
        try:
            source.backup(target, pages=1024)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()
    tmp.replace(out)
    return BackupResult(out, version, f"backup of schema version {version} written to {out}")


def _pg_backup(url: str, out: Path) -> BackupResult:
    from fhirmwl.store.migrations import current_version

    db = open_database(url)
    try:
        version = current_version(db)
    finally:
        db.close()
    if version == 0:
        raise BadRequest("the database has no fhirmwl schema (run fhirmwl migrate first)")
    clean, schema = _pg_parts(url)
    command = ["pg_dump", "--format=custom", f"--file={out}"]
    if schema:
        command.append(f"--schema={schema}")
    command.append(clean)
    restore = ["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={clean}", str(out)]
    message = (
        f"PostgreSQL store at schema version {version}; back it up with:\n  "
        + shlex.join(command)
        + "\nand restore it with:\n  "
        + shlex.join(restore)
    )
    return BackupResult(None, version, message)


def restore(backup_file: Path, url: str, *, force: bool = False) -> BackupResult:
    """Copy a SQLite backup into the store at ``url`` (which must be absent unless ``force``)."""
    if urlsplit(url).scheme in ("postgresql", "postgres"):
        clean, _ = _pg_parts(url)
        command = ["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={clean}"]
        return BackupResult(
            None,
            0,
            "restore a PostgreSQL dump with:\n  " + shlex.join([*command, str(backup_file)]),
        )
    if not backup_file.is_file():
        raise BadRequest(f"no backup file at {backup_file}")
    target_path = Path(_sqlite_path(url))
    if target_path.exists() and not force:
        raise BadRequest(f"{target_path} exists; stop the broker and use --force to replace it")
    source = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        version = _schema_version(source)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(target_path) + suffix).unlink(missing_ok=True)
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    return BackupResult(
        target_path, version, f"restored schema version {version} into {target_path}"
    )
