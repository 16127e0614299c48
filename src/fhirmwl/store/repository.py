"""The one repository: resources with version history, their search index, unique identifiers.

Everything that writes FHIR data (REST, transactions, the HL7 v2 intake, the order operations)
goes through ``Store.write()``, a unit of work that is one database transaction. Derived tables
(the worklist index, the outbox) register a ``WriteHook`` and are brought up to date in the same
transaction, just before commit, from the list of resources the unit of work touched.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import orjson

from fhirmwl.errors import (
    Conflict,
    DuplicateIdentifier,
    Gone,
    NotFound,
    PreconditionFailed,
    WriteConflict,
)
from fhirmwl.fhir.dates import now_instant, utc_key
from fhirmwl.fhir.indexing import IndexRows, index_rows
from fhirmwl.fhir.search import SearchQuery
from fhirmwl.fhir.search_params import SEARCH_PARAMS
from fhirmwl.store import codec, search_sql
from fhirmwl.store.db import Conn, Database
from fhirmwl.store.migrations import migrate

T = TypeVar("T")
_COLS = "res_type, res_id, version, last_updated, deleted, content"
_HIST_COLS = f"{_COLS}, method"
_CUR_COLS = f"{_COLS}, rid"  # current rows: and their integer key
_ROW_COLS = "res_type, res_id, version, last_updated, lu, method, deleted, content"
# Superseded versions: the current row moves to history before it is overwritten.
_TO_HISTORY = (
    f"INSERT INTO resource_history ({_ROW_COLS}) SELECT {_ROW_COLS} FROM resource "
    "WHERE res_type = ? AND res_id = ? AND version = ?"
)
# Index rows are keyed by the resource's integer ``rid`` and the parameter's ``pid`` (migration
# 220); ``n`` numbers a resource's rows of one parameter.
_INDEX_SQL = {
    "idx_token": "rid, pid, n, system, code, type_system, type_code",
    "idx_string": "rid, pid, n, value, raw",
    "idx_date": "rid, pid, n, lo, hi",
    "idx_ref": "rid, pid, n, target_type, target_id",
}
_UNIQUE_COLS = "kind, system, value, rid"
_SEEN_MAX = 10_000  # rows a unit of work remembers (see ``Tx._seen``)
_CHUNK = 400  # rows per multi-row INSERT (SQLite allows 32,766 parameters per statement)
_INDEX_TABLES = ("idx_token", "idx_string", "idx_date", "idx_ref", "unique_ident")  # by rid


@dataclass
class Stored:
    res_type: str
    res_id: str
    version: int
    last_updated: str
    deleted: bool
    content: str | None
    method: str = ""
    rid: int | None = None  # the integer key of the current row (None for history rows)

    def resource(self) -> dict[str, Any]:
        if self.content is None:
            raise Gone(f"{self.res_type}/{self.res_id} is deleted")
        result: dict[str, Any] = orjson.loads(self.content)
        return result

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


class WriteHook(Protocol):
    """Keeps a derived table consistent inside the writing transaction."""

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None: ...


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return body


def _same_content(current: Stored, res_type: str, res_id: str, new: dict[str, Any]) -> bool:
    """True when ``new`` would store exactly what is stored (ignoring version metadata)."""
    candidate = dict(new, resourceType=res_type, id=res_id)
    return _comparable(current.resource()) == _comparable(candidate)


def _row(row: Any, method: str = "") -> Stored:
    return Stored(row[0], row[1], row[2], row[3], bool(row[4]), codec.unpack(row[5]), method)


def _cur(row: Any) -> Stored:
    """A current row selected as ``_CUR_COLS``."""
    return Stored(
        row[0], row[1], row[2], row[3], bool(row[4]), codec.unpack(row[5]), "", int(row[6])
    )


@dataclass
class Tx:
    conn: Conn
    store: Store
    touched: list[tuple[str, str]] = field(default_factory=list)
    # Resources this unit of work created (first version): nothing outside the unit of work can
    # reference them yet, which lets derived-table hooks skip reverse-reference walks.
    created: set[tuple[str, str]] = field(default_factory=set)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Rows this unit of work has read or written: key → (row or None when absent, row lock
    # held). Every write of a resource goes through this Tx, so an entry is never stale for
    # this unit of work. A read ``for_update`` of a row read without the lock goes to the
    # database; of an absent one it does not (``FOR UPDATE`` locks nothing that is not there,
    # and a concurrent create of the same id fails on the primary key at insert either way).
    _seen: dict[tuple[str, str], tuple[Stored | None, bool]] = field(default_factory=dict)
    # The reference index rows this unit of work wrote, by source (param, target type, id):
    # exactly what the database holds for those sources now. ``_fresh``: resources created
    # under an id the store drew itself, which nothing outside this unit of work can reference.
    # Together they answer reference lookups about an order graph being written without SQL.
    _written_refs: dict[tuple[str, str], list[tuple[str, str, str]]] = field(default_factory=dict)
    _fresh: set[tuple[str, str]] = field(default_factory=set)
    # Parameter numbers this unit of work added to ``search_param``: the store's cache learns
    # them only after commit (a rolled-back number may be given to another parameter).
    _new_pids: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.conn.dialect

    def _remember(self, stored: Stored, locked: bool) -> None:
        if len(self._seen) >= _SEEN_MAX:  # a long batch (purge, reindex): memory stays bounded
            self._seen.clear()
        if stored.method:
            stored = replace(stored, method="")
        self._seen[(stored.res_type, stored.res_id)] = (stored, locked)

    # ---- reads -------------------------------------------------------------------------
    def read(self, res_type: str, res_id: str, *, for_update: bool = False) -> Stored | None:
        """The current row (deleted ones included), or None. Answered from this unit of work's
        own reads and writes when it can: an order graph's resources are read many times by
        the pipeline and the derived-table hooks."""
        hit = self._seen.get((res_type, res_id))
        if hit is not None and (hit[1] or not for_update or hit[0] is None):
            return hit[0]
        lock = " FOR UPDATE" if for_update and self.dialect == "postgresql" else ""
        row = self.conn.execute(
            f"SELECT {_CUR_COLS} FROM resource WHERE res_type = ? AND res_id = ?{lock}",
            (res_type, res_id),
        ).fetchone()
        if not row:
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[(res_type, res_id)] = (None, False)
            return None
        stored = _cur(row)
        # SQLite: a write transaction holds the database lock, every row is as good as locked.
        self._remember(stored, for_update or self.dialect == "sqlite")
        return stored

    def get(self, res_type: str, res_id: str) -> dict[str, Any]:
        """The current resource; NotFound / Gone otherwise."""
        stored = self.read(res_type, res_id)
        if stored is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
        return stored.resource()

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """One version: the current one lives in ``resource``, superseded ones in history."""
        row = self.conn.execute(
            f"SELECT {_HIST_COLS} FROM resource WHERE res_type = ? AND res_id = ? "
            f"AND version = ? UNION ALL SELECT {_HIST_COLS} FROM resource_history "
            "WHERE res_type = ? AND res_id = ? AND version = ?",
            (res_type, res_id, version) * 2,
        ).fetchone()
        return _row(row, row[6]) if row else None

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        count: int,
        offset: int,
        since: str | None = None,
    ) -> list[Stored]:
        """Every version, newest first: current rows and the superseded ones in history."""
        where, args = [], []
        if res_type:
            where.append("res_type = ?")
            args.append(res_type)
        if res_id:
            where.append("res_id = ?")
            args.append(res_id)
        if since:
            where.append("lu >= ?")
            args.append(utc_key(since))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # Each side keeps only its newest count + offset versions (an index range on
        # (res_type, lu) for type history) before the two are merged.
        newest = f"ORDER BY lu DESC, version DESC LIMIT {int(count) + int(offset)}"
        rows = self.conn.execute(
            f"SELECT {_HIST_COLS} FROM ("
            f"SELECT * FROM (SELECT {_HIST_COLS}, lu FROM resource{clause} {newest}) c "
            f"UNION ALL SELECT * FROM (SELECT {_HIST_COLS}, lu FROM resource_history{clause} "
            f"{newest}) p) v ORDER BY lu DESC, version DESC LIMIT ? OFFSET ?",
            (*args, *args, count, offset),
        ).fetchall()
        return [_row(r, r[6]) for r in rows]

    def search(self, q: SearchQuery) -> list[tuple[str, str]]:
        """(id, JSON) of the matches; the rows also answer later reads in this unit of work."""
        sql, args = search_sql.build_search(q, self.pid)
        out = []
        for r in self.conn.execute(sql, args).fetchall():
            stored = _cur(r)
            if (stored.res_type, stored.res_id) not in self._seen:
                self._remember(stored, self.dialect == "sqlite")
            out.append((stored.res_id, stored.content or ""))
        return out

    def count(self, q: SearchQuery) -> int:
        sql, args = search_sql.build_count(q, self.pid)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def references_from(
        self, res_type: str, ids: list[str], param: str | None, target_type: str | None
    ) -> list[tuple[str, str]]:
        """Distinct (target type, target id) referenced by ``res_type``/``ids``."""
        known = [i for i in ids if (res_type, i) in self._written_refs]
        out = [
            (tt, tid)
            for i in known
            for p, tt, tid in self._written_refs[(res_type, i)]
            if _matches(p, param) and _matches(tt, target_type)
        ]
        rest = [i for i in ids if (res_type, i) not in self._written_refs] if known else ids
        if rest:
            # From the source rows (by their unique key) to their reference rows (by rid).
            sql = (
                "SELECT DISTINCT i.target_type, i.target_id FROM resource r JOIN idx_ref i "
                "ON i.rid = r.rid WHERE r.res_type = ? AND r.res_id IN ({marks})"
            )
            extra: list[Any] = []
            if param and param != "*":
                which, which_args = search_sql.param_sql(self.pid, res_type, param, "i.")
                sql += f" AND {which}"
                extra += which_args
            if target_type and target_type != "*":
                # SQLite could drive this from the target index on the type alone (every
                # reference of that type); unary + keeps it on the source rows.
                col = "+i.target_type" if self.dialect == "sqlite" else "i.target_type"
                sql += f" AND {col} = ?"
                extra.append(target_type)
            out += self._chunked(sql, [res_type], rest, extra)
        return list(dict.fromkeys(out))

    def references_to(
        self, target_type: str, ids: list[str], source_type: str | None, param: str | None
    ) -> list[tuple[str, str]]:
        """Distinct (source type, source id) referencing ``target_type``/``ids``."""
        fresh = {i for i in ids if (target_type, i) in self._fresh}
        out = [
            source
            for source, refs in self._written_refs.items()
            if fresh and _matches(source[0], source_type)
            for p, tt, tid in refs
            if tt == target_type and tid in fresh and _matches(p, param)
        ]
        rest = [i for i in ids if i not in fresh]
        if rest:
            sql = (
                "SELECT DISTINCT r.res_type, r.res_id FROM idx_ref i JOIN resource r "
                "ON r.rid = i.rid WHERE i.target_id IN ({marks}) AND i.target_type = ?"
            )
            extra: list[Any] = [target_type]
            some_type = source_type and source_type != "*"
            if param and param != "*":
                if some_type:
                    which, which_args = search_sql.param_sql(
                        self.pid, str(source_type), param, "i."
                    )
                    sql += f" AND {which}"
                    extra += which_args
                else:  # the parameter of that name on any resource type (or its base rows)
                    bases = [
                        pid
                        for (t, name), (base, only) in search_sql.REF_ALIASES.items()
                        if name == param and only == target_type
                        for pid in [self.pid(t, base)]
                        if pid is not None
                    ]
                    sql += (
                        " AND (i.pid IN (SELECT pid FROM search_param WHERE name = ?)"
                        f" OR i.pid IN ({','.join(['?'] * len(bases)) or 'NULL'}))"
                    )
                    extra += [param, *bases]
            if some_type:
                sql += " AND r.res_type = ?"
                extra.append(source_type)
            out += self._chunked(sql, [], rest, extra)
        return list(dict.fromkeys(out))

    def _chunked(
        self, sql: str, before: list[Any], ids: list[str], after: list[Any]
    ) -> list[tuple[str, str]]:
        """``sql`` (with ``{marks}`` for the ids) run per 500 ids; the distinct row pairs."""
        out: list[tuple[str, str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.conn.execute(
                sql.format(marks=",".join("?" * len(chunk))), [*before, *chunk, *after]
            ).fetchall()
            out += [(str(r[0]), str(r[1])) for r in rows]
        return out

    def read_many(self, keys: list[tuple[str, str]]) -> list[Stored]:
        """The live (not deleted) current rows of ``keys``, in no particular order."""
        out: list[Stored] = []
        by_type: dict[str, list[str]] = {}
        for t, i in dict.fromkeys(keys):
            hit = self._seen.get((t, i))
            if hit is not None:
                if hit[0] is not None and not hit[0].deleted:
                    out.append(hit[0])
                continue
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = self.conn.execute(
                    f"SELECT {_CUR_COLS} FROM resource WHERE res_type = ? AND deleted = 0 "
                    f"AND res_id IN ({','.join('?' * len(chunk))})",
                    (t, *chunk),
                ).fetchall()
                for r in rows:
                    stored = _cur(r)
                    self._remember(stored, self.dialect == "sqlite")
                    out.append(stored)
        return out

    def find_unique(self, kind: str, system: str, value: str) -> tuple[str, str] | None:
        row = self.conn.execute(
            "SELECT r.res_type, r.res_id FROM unique_ident u JOIN resource r ON r.rid = u.rid "
            "WHERE u.kind = ? AND u.system = ? AND u.value = ?",
            (kind, system, value),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def lock(self, key: str) -> bool:
        """Hold a lock on ``key`` (a business identifier) until this unit of work ends.

        PostgreSQL: a transaction-scoped advisory lock, shared by every connection and process
        on the database (the key is hashed together with the schema, so tests in other schemas
        do not wait on each other). A caller that found nothing, locks and looks again sees what
        a concurrent writer committed meanwhile (READ COMMITTED: each statement reads the latest
        commits). SQLite serialises writers already, so there is nothing to do; returns False.
        """
        if self.dialect != "postgresql":
            return False
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ?, 0))", (key,)
        )
        return True

    # ---- writes ------------------------------------------------------------------------
    def create(
        self,
        res_type: str,
        resource: dict[str, Any],
        res_id: str | None = None,
        *,
        fresh: bool = False,
    ) -> Stored:
        """Create with a server-assigned id, or a caller-chosen one that must be new (``fresh``:
        the caller just drew it from ``store.new_id()``, so the existence check is skipped; the
        primary key still guards it)."""
        if res_id is not None and not fresh and self.read(res_type, res_id) is not None:
            raise Conflict(f"{res_type}/{res_id} already exists")
        if res_id is None or fresh:
            res_id = res_id or self.store.new_id()
            self._fresh.add((res_type, res_id))
        return self._write(res_type, res_id, resource, 1, "POST", insert=True)

    def update(
        self, res_type: str, res_id: str, resource: dict[str, Any], if_match: int | None = None
    ) -> tuple[Stored, bool]:
        """Update (or create with the client's id); returns (stored, created)."""
        current = self.read(res_type, res_id, for_update=True)
        if current is None:
            if if_match is not None:
                raise PreconditionFailed(f"{res_type}/{res_id} does not exist (If-Match given)")
            return self._write(res_type, res_id, resource, 1, "PUT", insert=True), True
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(
                f"version conflict on {res_type}/{res_id}: If-Match {if_match}, "
                f"current version {current.version}"
            )
        if not current.deleted and _same_content(current, res_type, res_id, resource):
            return current, False  # no-op update: no new version, no re-indexing, no events
        stored = self._write(
            res_type, res_id, resource, current.version + 1, "PUT", current=current
        )
        return stored, False

    def delete(self, res_type: str, res_id: str, if_match: int | None = None) -> Stored | None:
        current = self.read(res_type, res_id, for_update=True)
        if current is None or current.deleted:
            return None
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(f"version conflict on {res_type}/{res_id}")
        version, instant = current.version + 1, self.store.clock()
        rid = self._rid(current)
        self._supersede(
            res_type,
            res_id,
            rid,
            current.version,
            "method = 'DELETE', deleted = 1, content = NULL",
            (version, instant, utc_key(instant)),
        )
        self.touched.append((res_type, res_id))
        gone = Stored(res_type, res_id, version, instant, True, None, "DELETE", rid)
        self._remember(gone, True)
        return gone

    def _rid(self, stored: Stored) -> int:
        """The integer key of a current row (every current row read or written carries it)."""
        if stored.rid is not None:
            return stored.rid
        row = self.conn.execute(
            "SELECT rid FROM resource WHERE res_type = ? AND res_id = ?",
            (stored.res_type, stored.res_id),
        ).fetchone()
        if row is None:
            raise PreconditionFailed(f"concurrent change to {stored.res_type}/{stored.res_id}")
        return int(row[0])

    def _write(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        version: int,
        method: str,
        insert: bool = False,
        current: Stored | None = None,
    ) -> Stored:
        instant = self.store.clock()
        body = dict(resource)
        body["resourceType"], body["id"] = res_type, res_id
        meta = dict(body.get("meta") or {})
        meta["versionId"], meta["lastUpdated"] = str(version), instant
        body["meta"] = meta
        content = orjson.dumps(body).decode()
        lu = utc_key(instant)
        # SQLite stores the JSON deflated (store/codec.py); PostgreSQL's column is text.
        packed: str | bytes = codec.pack(content) if self.dialect == "sqlite" else content
        if insert:
            row = (res_type, res_id, version, instant, lu, method, 0, packed)
            first = (f"INSERT INTO resource ({_ROW_COLS}) VALUES ({', '.join('?' * 8)})", row)
            # PostgreSQL: the row and all its index rows in one statement (one round trip).
            rid = self._index(res_type, res_id, None, body, first)
            self.created.add((res_type, res_id))
        else:
            assert current is not None
            rid = self._rid(current)
            self._supersede(
                res_type,
                res_id,
                rid,
                current.version,
                "method = ?, deleted = 0, content = ?",
                (version, instant, lu, method, packed),
            )
            self._index(res_type, res_id, rid, body)
        self.touched.append((res_type, res_id))
        stored = Stored(res_type, res_id, version, instant, False, content, method, rid)
        self._remember(stored, True)
        return stored

    def _supersede(
        self,
        res_type: str,
        res_id: str,
        rid: int,
        expected: int,
        assign: str,
        args: tuple[Any, ...],
    ) -> None:
        """Move version ``expected`` to history, overwrite the current row (``version,
        last_updated, lu`` from the first three ``args``, then ``assign``) and drop its index
        rows. PostgreSQL: one statement (data-modifying CTEs see the row as it was)."""
        key = (res_type, res_id)
        update = (
            f"UPDATE resource SET version = ?, last_updated = ?, lu = ?, {assign} "
            "WHERE res_type = ? AND res_id = ? AND version = ?"
        )
        update_args = (*args, *key, expected)
        if self.dialect == "postgresql":
            ctes = ", ".join(
                f"d{n} AS (DELETE FROM {t} WHERE rid = ?)" for n, t in enumerate(_INDEX_TABLES)
            )
            written = self.conn.execute(
                f"WITH h AS ({_TO_HISTORY}), {ctes} {update}",
                (*key, expected, *(rid,) * len(_INDEX_TABLES), *update_args),
            )
        else:
            self.conn.execute(_TO_HISTORY, (*key, expected))
            written = self.conn.execute(update, update_args)
            self._clear_index(res_type, res_id, rid)
        if written.rowcount != 1:
            raise PreconditionFailed(f"concurrent change to {res_type}/{res_id}")
        self._written_refs[key] = []

    def reindex(self, res_type: str, res_id: str) -> None:
        """Recompute the search index rows of the current version (``fhirmwl reindex``)."""
        stored = self.read(res_type, res_id)
        if stored is None:
            return
        rid = self._rid(stored)
        self._clear_index(res_type, res_id, rid)
        if not stored.deleted:
            self._index(res_type, res_id, rid, stored.resource())
            self.touched.append((res_type, res_id))

    def _clear_index(self, res_type: str, res_id: str, rid: int) -> None:
        self._written_refs[(res_type, res_id)] = []
        if self.dialect == "postgresql":
            # One round trip instead of five: data-modifying CTEs (PostgreSQL only).
            ctes = ", ".join(
                f"d{n} AS (DELETE FROM {t} WHERE rid = ?)" for n, t in enumerate(_INDEX_TABLES[:-1])
            )
            self.conn.execute(
                f"WITH {ctes} DELETE FROM {_INDEX_TABLES[-1]} WHERE rid = ?",
                (rid,) * len(_INDEX_TABLES),
            )
            return
        for table in _INDEX_TABLES:
            self.conn.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))

    # ---- parameter numbers ----------------------------------------------------------------
    def pid(self, res_type: str, name: str) -> int | None:
        """The number of search parameter ``name`` of ``res_type``; None when no resource was
        ever indexed under it (a search on it matches nothing)."""
        key = (res_type, name)
        pid = self._new_pids.get(key) or self.store.pids.get(key)
        if pid is None:
            self._load_pids()
            pid = self.store.pids.get(key)
        return pid

    def _load_pids(self) -> None:
        rows = self.conn.execute("SELECT res_type, name, pid FROM search_param").fetchall()
        found = {(str(t), str(n)): int(p) for t, n, p in rows}
        for key in self._new_pids:  # not committed yet: not for the store's cache
            found.pop(key, None)
        self.store.learn_pids(found)

    def _pids_for(self, res_type: str, rows: IndexRows) -> dict[str, int]:
        """Parameter name → number for the index rows of one resource, numbering new ones."""
        names = {r[0] for part in (rows.tokens, rows.strings, rows.dates, rows.refs) for r in part}
        out: dict[str, int] = {}
        missing: list[str] = []
        for name in names:
            pid = self._new_pids.get((res_type, name)) or self.store.pids.get((res_type, name))
            if pid is None:
                missing.append(name)
            else:
                out[name] = pid
        if missing:
            self._load_pids()  # another process may have numbered them
            missing = [n for n in missing if (res_type, n) not in self.store.pids]
        if missing:
            # Not registered (``Store.sync_pids`` numbered those): numbered here, once.
            wanted = sorted(missing)
            self.conn.execute(
                "INSERT INTO search_param (res_type, name) VALUES "
                + ", ".join("(?, ?)" for _ in wanted)
                + " ON CONFLICT DO NOTHING",
                tuple(v for name in wanted for v in (res_type, name)),
            )
            rows_ = self.conn.execute(
                "SELECT name, pid FROM search_param WHERE res_type = ?", (res_type,)
            ).fetchall()
            for name, pid in rows_:
                key = (res_type, str(name))
                if key not in self.store.pids:
                    self._new_pids[key] = int(pid)
            learned = dict(self._new_pids)
            self.after_commit.append(lambda: self.store.learn_pids(learned))
        for name in names:
            out[name] = self._new_pids.get((res_type, name)) or self.store.pids[(res_type, name)]
        return out

    def _index(
        self,
        res_type: str,
        res_id: str,
        rid: int | None,
        body: dict[str, Any],
        first: tuple[str, tuple[Any, ...]] | None = None,
    ) -> int:
        """Insert the search index rows and unique identifiers of ``body`` (after ``first``,
        the INSERT of the resource row, when ``rid`` is not known yet); returns the rid.

        Each table's rows go in multi-row INSERTs; on PostgreSQL all of them (and ``first``)
        are one statement, the rows taking the new rid from ``first``'s RETURNING. A unique
        identifier another resource owns is caught by the primary key (``ON CONFLICT DO
        NOTHING`` inserts fewer rows) rather than looked up beforehand.
        """
        rows = index_rows(res_type, body)
        key = (res_type, res_id)
        self._written_refs[key] = list(rows.refs)
        pids = self._pids_for(res_type, rows)
        pg = self.dialect == "postgresql"
        if first is not None and not pg:
            rid = int(self.conn.execute(*first).lastrowid)
            first = None
        statements: list[tuple[str, tuple[Any, ...]]] = []
        if first is not None:
            statements.append((f"{first[0]} RETURNING rid", first[1]))
        rid_sql, rid_args = ("(SELECT rid FROM c0)", ()) if first is not None else ("?", (rid,))
        # A reference listed twice is indexed once; an alias's (``patient``) rows are its base
        # parameter's (``subject``) and not stored again (``search_sql.REF_ALIASES``).
        refs = [r for r in rows.refs if (res_type, r[0]) not in search_sql.REF_ALIASES]
        tables: tuple[tuple[str, Sequence[tuple[Any, ...]]], ...] = (
            ("idx_token", rows.tokens),
            ("idx_string", rows.strings),
            ("idx_date", rows.dates),
            ("idx_ref", list(dict.fromkeys(refs))),
        )
        for table, data in tables:
            numbered = _numbered(data, pids)
            for start in range(0, len(numbered), _CHUNK):
                chunk = numbered[start : start + _CHUNK]
                one = f"({rid_sql}, {', '.join('?' * len(chunk[0]))})"
                statements.append(
                    (
                        f"INSERT INTO {table} ({_INDEX_SQL[table]}) VALUES "
                        + ", ".join([one] * len(chunk)),
                        tuple(v for r in chunk for v in (*rid_args, *r)),
                    )
                )
        uniques = list(dict.fromkeys(rows.uniques))
        if uniques:
            statements.append(
                (
                    f"INSERT INTO unique_ident ({_UNIQUE_COLS}) VALUES "
                    + ", ".join([f"(?, ?, ?, {rid_sql})"] * len(uniques))
                    + " ON CONFLICT DO NOTHING"
                    + (" RETURNING 1" if pg else ""),
                    tuple(v for u in uniques for v in (*u, *rid_args)),
                )
            )
        inserted = 0
        if pg and statements:
            ctes = ", ".join(f"c{n} AS ({q})" for n, (q, _) in enumerate(statements))
            args = tuple(a for _, part in statements for a in part)
            last = len(statements) - 1
            made = "(SELECT rid FROM c0)" if first is not None else "NULL"
            counted = f"(SELECT COUNT(*) FROM c{last})" if uniques else "0"
            new_rid, inserted = self.conn.execute(
                f"WITH {ctes} SELECT {made}, {counted}", args
            ).fetchone()
            if first is not None:
                rid = int(new_rid)
        else:
            for sql, args in statements:
                cursor = self.conn.execute(sql, args)
            if uniques:
                inserted = cursor.rowcount
        if uniques and inserted < len(uniques):
            for kind, system, value in uniques:
                owner = self.find_unique(kind, system, value)
                if owner and owner != key:
                    raise DuplicateIdentifier(
                        f"{kind} identifier {system}|{value} already belongs to "
                        f"{owner[0]}/{owner[1]}"
                    )
        assert rid is not None
        return rid


def _numbered(data: Sequence[tuple[Any, ...]], pids: dict[str, int]) -> list[tuple[Any, ...]]:
    """Rows ``(param, values…)`` as ``(pid, n, values…)``, ``n`` counting per parameter (0
    and 1 take no bytes in an SQLite record)."""
    seen: dict[str, int] = {}
    out: list[tuple[Any, ...]] = []
    for param, *values in data:
        n = seen.get(param, 0)
        seen[param] = n + 1
        out.append((pids[param], n, *values))
    return out


def _matches(value: str, wanted: str | None) -> bool:
    return not wanted or wanted == "*" or value == wanted


class Store:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], str] = now_instant,
        id_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        auto_migrate: bool = True,
    ) -> None:
        self.db = db
        self.clock = clock
        self.new_id = id_factory
        self.hooks: list[WriteHook] = []
        # (resource type, parameter name) → pid, committed numbers only (see ``Tx.pid``)
        self.pids: dict[tuple[str, str], int] = {}
        self._pid_lock = threading.Lock()
        self._pids_synced = False
        if auto_migrate:
            migrate(db)

    def sync_pids(self) -> None:
        """Number every registered search parameter (``search_param``) and load the numbers,
        in a short transaction of its own before the first write: units of work then never
        number one themselves, which would hold a row lock that a concurrent first write of
        the same resource type waits for (and, with an identifier lock, deadlocks on)."""
        wanted = [(t, name) for t, params in SEARCH_PARAMS.items() for name in params]
        with self.db.transaction(write=True) as conn:
            rows = conn.execute("SELECT res_type, name, pid FROM search_param").fetchall()
            known = {(str(t), str(n)) for t, n, _ in rows}
            missing = sorted(set(wanted) - known)  # one order for every process: no deadlock
            for start in range(0, len(missing), _CHUNK):
                chunk = missing[start : start + _CHUNK]
                conn.execute(
                    "INSERT INTO search_param (res_type, name) VALUES "
                    + ", ".join("(?, ?)" for _ in chunk)
                    + " ON CONFLICT DO NOTHING",
                    tuple(v for key in chunk for v in key),
                )
            if missing:
                rows = conn.execute("SELECT res_type, name, pid FROM search_param").fetchall()
        self.learn_pids({(str(t), str(n)): int(p) for t, n, p in rows})
        self._pids_synced = True

    def learn_pids(self, found: dict[tuple[str, str], int]) -> None:
        """Add committed parameter numbers to the cache (a new dict: readers never see one
        half-updated)."""
        with self._pid_lock:
            self.pids = {**self.pids, **found}

    def add_hook(self, hook: WriteHook) -> None:
        self.hooks.append(hook)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.db.transaction(write=False) as conn:
            yield Tx(conn, self)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One unit of work: commits on normal exit, rolls back on any exception."""
        if not self._pids_synced:
            self.sync_pids()
        tx: Tx | None = None
        try:
            with self.db.transaction(write=True) as conn:
                tx = Tx(conn, self)
                yield tx
                if tx.touched:
                    touched = list(dict.fromkeys(tx.touched))
                    for hook in self.hooks:
                        hook.before_commit(tx, touched)
        except Exception as exc:
            if self.db.is_retryable(exc):
                raise WriteConflict(
                    "a concurrent writer held a lock this request needed; nothing was written, "
                    "retry the request"
                ) from exc
            if self.db.is_unique_violation(exc):
                raise DuplicateIdentifier(
                    "a concurrent writer created the same resource or business identifier; "
                    "nothing was written, retry the request"
                ) from exc
            raise
        for callback in tx.after_commit:
            callback()

    def run_write(self, work: Callable[[Tx], T], attempts: int = 3) -> T:
        """``work`` in one unit of work, run again (re-reading everything) after a
        ``WriteConflict``: a deadlock between concurrent find-or-create calls on PostgreSQL."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as tx:
                    return work(tx)
            except WriteConflict:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.db.close()


def open_store(url: str, **kwargs: Any) -> Store:
    from fhirmwl.store.db import open_database

    return Store(open_database(url), **kwargs)
