"""Database connections for the two backends, behind one small interface.

We talk DB-API directly (sqlite3, psycopg 3) instead of through an ORM: the store issues a few
dozen hand-written, parameterised statements, and the hot paths (a read is one indexed SELECT
returning the stored JSON verbatim) gain nothing from an abstraction layer. The dialect switch is
small: placeholders (``?`` vs ``%s``), auto-increment DDL, and how a write transaction takes its
lock. SQLite serialises writers in-process with a lock (no busy-polling) and across processes with
``BEGIN IMMEDIATE``; PostgreSQL uses a connection pool and row locks.

SQLite's WAL checkpoint (copying committed pages from the WAL back into the database file) runs,
by default, inside the COMMIT that takes the WAL past 1,000 pages: that one write pays for many
others' pages, which is the tail of the ACK latency. A file database here turns that off on its
own connections and checkpoints from a daemon thread instead (see ``_Checkpointer``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from fhirmwl.errors import BadRequest, StoreError

log = logging.getLogger(__name__)


class Conn(Protocol):
    """The subset of a DB-API connection the store uses, with ``?`` placeholders."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class _SqliteConn:
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(sql, rows)


class _PgConn:
    dialect = "postgresql"

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.raw.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)


class Database(Protocol):
    dialect: str
    url: str

    def transaction(self, write: bool) -> Any: ...

    def close(self) -> None: ...

    def is_unique_violation(self, exc: BaseException) -> bool: ...

    def is_retryable(self, exc: BaseException) -> bool: ...


SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
# Above this WAL file size the checkpointer also tries a TRUNCATE checkpoint, so that a WAL that
# could not be restarted (a reader kept an old snapshot while writes went on) cannot grow without
# bound. Below it, SQLite reuses the file from its start once a checkpoint has copied everything.
WAL_TRUNCATE_BYTES = 64 * 1024 * 1024


class _Checkpointer:
    """Checkpoints one SQLite file's WAL from a daemon thread, off the commit path.

    Every ``interval`` seconds it runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection:
    it copies what it can without taking any lock that a writer or reader waits for. When the WAL
    file is larger than ``WAL_TRUNCATE_BYTES`` it also tries ``TRUNCATE``, holding the in-process
    write lock (our writers wait on a lock, not on SQLite's busy-polling) and with no busy timeout
    (another process's writer or an old reader makes it return at once, as a PASSIVE one). At
    stop it runs a last checkpoint. Durability does not depend on it: a commit is in the WAL when
    it returns, and opening the file after a crash reads the WAL. Each process opening the file
    runs its own; two at once are harmless (a checkpoint is serialised by SQLite).
    """

    def __init__(self, path: str, interval: float, write_lock: threading.Lock) -> None:
        self.path = path
        self.interval = interval
        self.write_lock = write_lock
        self.runs = 0  # checkpoints run, for tests and diagnostics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # pragma: no cover - the store's own open fails the same way
            log.warning("SQLite checkpointer not started: %s", exc)
            return
        try:
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            while not self._stop.wait(self.interval):
                self.checkpoint(conn)
            self.checkpoint(conn, final=True)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection, final: bool = False) -> None:
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.runs += 1
            if frames != copied:  # a reader's snapshot holds the rest; copied on a later run
                log.debug("SQLite checkpoint copied %s of %s WAL frames", copied, frames)
            try:
                size = os.path.getsize(self.path + "-wal")
            except OSError:
                return
            if final or size > WAL_TRUNCATE_BYTES:
                with self.write_lock:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("SQLite checkpoint failed (retried in %.1f s): %s", self.interval, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


class SqliteDatabase:
    """One SQLite file in WAL mode.

    ``synchronous=NORMAL`` (the default): a commit is in the WAL file, handed to the operating
    system, before it returns, so it survives the process being killed (kill -9, OOM killer);
    only an operating-system crash or power loss can take the last commits with it, never
    corrupt the database. ``FULL`` (``sqlite:///path?synchronous=FULL``) also waits for the
    disk on every commit, for power-loss durability at the cost of an fsync per write.

    ``checkpoint_interval`` seconds (``?checkpoint_interval=…``, default 1) is how often a
    background thread checkpoints the WAL (``_Checkpointer``); 0 leaves it to SQLite's automatic
    checkpoint inside COMMIT, as before.
    """

    dialect = "sqlite"

    def __init__(
        self, path: str, url: str, synchronous: str = "NORMAL", checkpoint_interval: float = 1.0
    ) -> None:
        self.url = url
        self.path = path
        self.synchronous = synchronous
        self.checkpoint_interval = checkpoint_interval
        self._checkpointer: _Checkpointer | None = None
        self._uri = False
        self._keepalive: sqlite3.Connection | None = None
        if path == ":memory:":
            # Every thread has its own connection; a named shared-cache database lets them all
            # see the same in-memory data (tests, demos). One connection keeps it alive.
            self.path, self._uri = f"file:fhirmwl-{uuid.uuid4().hex}?mode=memory&cache=shared", True
            self._keepalive = sqlite3.connect(self.path, uri=True, check_same_thread=False)
            self.checkpoint_interval = 0  # no WAL: nothing to checkpoint
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._guard = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        raw = getattr(self._local, "conn", None)
        if raw is None:
            raw = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, uri=self._uri
            )
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute(f"PRAGMA synchronous={self.synchronous}")
            raw.execute("PRAGMA busy_timeout=30000")
            raw.execute("PRAGMA foreign_keys=ON")
            # Search values are stored normalised; a case-sensitive LIKE lets SQLite use the
            # (res_type, param, value) index for prefix searches.
            raw.execute("PRAGMA case_sensitive_like=ON")
            if self.checkpoint_interval > 0:
                raw.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = raw
            with self._guard:
                self._all.append(raw)
                if self.checkpoint_interval > 0 and self._checkpointer is None:
                    self._checkpointer = _Checkpointer(
                        self.path, self.checkpoint_interval, self._write_lock
                    )
        return raw

    @contextmanager
    def transaction(self, write: bool) -> Iterator[Conn]:
        raw = self._conn()
        lock = self._write_lock if write else None
        if lock:
            lock.acquire()
        try:
            raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteConn(raw)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite failure: {exc}") from exc
        finally:
            if lock:
                lock.release()

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def is_retryable(self, exc: BaseException) -> bool:
        return False  # one writer at a time: no deadlock, no serialization failure

    def close(self) -> None:
        with self._guard:
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()  # its last checkpoint, before our connections close
        with self._guard:
            for raw in self._all:
                raw.close()
            self._all.clear()
            if self._keepalive is not None:
                self._keepalive.close()
                self._keepalive = None
        self._local = threading.local()


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, schema: str | None, max_size: int = 16) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._psycopg = psycopg
        kwargs: dict[str, Any] = {"autocommit": False}
        if schema:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            kwargs["options"] = f"-c search_path={schema}"
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max_size, kwargs=kwargs, open=True, timeout=30
        )

    @contextmanager
    def transaction(self, write: bool) -> Iterator[Conn]:
        try:
            with self.pool.connection() as raw, raw.transaction():
                yield _PgConn(raw)
        except self._psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL failure: {exc}") from exc

    def script(self, sql: str) -> int:
        """Run parameterless ``;``-separated statements as one implicit transaction in one round
        trip (autocommit and the simple query protocol: BEGIN and COMMIT are not sent apart);
        return the row count of the last statement. Each statement reads the latest commits
        (READ COMMITTED takes a snapshot per statement), and a failing statement rolls back them
        all. For short, hot maintenance transactions such as the outbox sequencer."""
        try:
            with self.pool.connection() as raw:
                raw.autocommit = True
                try:
                    cur = raw.execute(sql)
                    while cur.nextset():
                        pass
                    return int(cur.rowcount)
                finally:
                    raw.autocommit = False
        except self._psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL failure: {exc}") from exc

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)

    def is_retryable(self, exc: BaseException) -> bool:
        """Deadlock or serialization failure (SQLSTATE class 40), possibly wrapped in StoreError."""
        for err in (exc, exc.__cause__):
            if isinstance(err, self._psycopg.Error) and str(err.sqlstate or "").startswith("40"):
                return True
        return False

    def close(self) -> None:
        self.pool.close()


def open_database(url: str) -> Database:
    """Open ``sqlite:///path``, ``sqlite:///:memory:`` or ``postgresql://…[?schema=name]``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if parts.netloc and parts.netloc != "":
            path = parts.netloc + parts.path
        sync = (parse_qs(parts.query).get("synchronous") or ["NORMAL"])[0].upper()
        if sync not in SYNCHRONOUS:
            raise BadRequest(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {sync!r}")
        raw_interval = (parse_qs(parts.query).get("checkpoint_interval") or ["1"])[0]
        try:
            interval = float(raw_interval)
        except ValueError:
            interval = -1.0
        if not 0 <= interval <= 3600:
            raise BadRequest(
                f"checkpoint_interval must be seconds from 0 to 3600, got {raw_interval!r}"
            )
        return SqliteDatabase(path or ":memory:", url, sync, interval)
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        schema = (query.pop("schema", [None]) or [None])[0]
        if schema and not schema.replace("_", "").isalnum():
            raise BadRequest(f"invalid schema name {schema!r}")
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        clean = parts._replace(query=rest).geturl()
        return PostgresDatabase(clean, schema)
    raise BadRequest(f"unsupported database URL scheme {parts.scheme!r} (use sqlite or postgresql)")
