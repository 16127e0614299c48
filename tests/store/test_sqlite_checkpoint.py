"""SQLite's WAL is checkpointed by the store's background thread, never inside a COMMIT.

SQLite's automatic checkpoint runs in the COMMIT that takes the WAL past 1,000 pages and makes
that write slow; the store turns it off on its connections and checkpoints from a thread
(``checkpoint_interval`` seconds, ``?checkpoint_interval=0`` = SQLite's automatic checkpoint).
What is checkpointed is read from a copy of the database file alone (without its WAL), i.e.
what a checkpoint has written into it. SQLite only: PostgreSQL has no such checkpoint in commits.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from fhirmwl.errors import BadRequest
from fhirmwl.store.db import SqliteDatabase, open_database

PAGE = 4096


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _rows_in_main_file(path: Path, tmp: Path) -> int:
    """Rows of ``t`` in the database file itself: what checkpoints have copied out of the WAL."""
    copy = tmp / "main-only.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(path, copy)
    with closing(sqlite3.connect(copy)) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        except sqlite3.DatabaseError:  # not checkpointed yet, or copied while a checkpoint wrote
            return 0


def _write(db: SqliteDatabase, rows: int, size: int) -> None:
    with db.transaction(True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    for _ in range(rows):
        with db.transaction(True) as conn:
            conn.execute("INSERT INTO t (body) VALUES (randomblob(?))", (size,))


def test_background_thread_checkpoints_what_commits_leave_in_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    db = open_database(f"sqlite:///{path}?checkpoint_interval=0.05")
    assert isinstance(db, SqliteDatabase)
    try:
        _write(db, 20, 1000)  # a few dozen pages: far below SQLite's automatic checkpoint
        with db.transaction(False) as conn:
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        deadline = time.monotonic() + 30
        checkpointer = db._checkpointer
        assert checkpointer is not None
        rows = 0
        # the thread counts a run after the checkpoint returned: the file may show the rows first
        while (rows < 20 or checkpointer.runs == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
            rows = _rows_in_main_file(path, tmp_path)
        assert rows == 20
        assert checkpointer.runs > 0
    finally:
        db.close()
    assert _wal_bytes(path) == 0  # the last checkpoint at close truncated the WAL


@pytest.mark.parametrize("interval", ["3600", "0"])
def test_commits_run_no_checkpoint_unless_configured_to(tmp_path: Path, interval: str) -> None:
    """Past 1,000 WAL pages, COMMIT checkpoints only with ``checkpoint_interval=0``."""
    path = tmp_path / "store.db"
    db = open_database(f"sqlite:///{path}?checkpoint_interval={interval}")
    assert isinstance(db, SqliteDatabase)
    try:
        _write(db, 150, 12 * PAGE)  # about 2,000 pages of WAL
        checkpointed = _rows_in_main_file(path, tmp_path)
        if interval == "0":
            # SQLite's own checkpoint ran in some COMMITs: rows reached the file, and the WAL
            # was started over instead of growing.
            assert checkpointed > 0
            assert _wal_bytes(path) < 1500 * PAGE
        else:
            # The thread has not run yet (one hour): no COMMIT checkpointed anything.
            assert checkpointed == 0
            assert _wal_bytes(path) > 1500 * PAGE
        with db.transaction(False) as conn:
            assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 150
    finally:
        db.close()
    assert _rows_in_main_file(path, tmp_path) == 150


def test_checkpoint_interval_is_checked() -> None:
    with pytest.raises(BadRequest, match="checkpoint_interval"):
        open_database("sqlite:///x.db?checkpoint_interval=soon")
    with pytest.raises(BadRequest, match="checkpoint_interval"):
        open_database("sqlite:///x.db?checkpoint_interval=-1")
