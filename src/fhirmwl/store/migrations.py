"""Versioned schema migrations, applied automatically when a store opens.

Each migration is a list of DDL statements written once for both dialects; ``{autoinc}`` expands
to the dialect's auto-increment key, and a ``postgresql:`` / ``sqlite:`` prefix limits a statement
to one backend. Other components (the worklist index, the message log, the
outbox) append their own migrations to ``MIGRATIONS`` by version number, so one ordered history
describes the whole database. Several processes may open the same PostgreSQL database at once: an
advisory lock makes only one of them migrate.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirmwl.store.db import Conn, Database


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_CORE = Migration(
    1,
    "resources, history, search index, unique identifiers",
    (
        """CREATE TABLE resource (
            res_type TEXT NOT NULL, res_id TEXT NOT NULL, version INTEGER NOT NULL,
            last_updated TEXT NOT NULL, lu TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            content TEXT, PRIMARY KEY (res_type, res_id))""",
        "CREATE INDEX ix_resource_lu ON resource (res_type, lu)",
        """CREATE TABLE resource_history (
            res_type TEXT NOT NULL, res_id TEXT NOT NULL, version INTEGER NOT NULL,
            last_updated TEXT NOT NULL, lu TEXT NOT NULL, method TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0, content TEXT,
            PRIMARY KEY (res_type, res_id, version))""",
        "CREATE INDEX ix_history_lu ON resource_history (res_type, lu)",
        "CREATE INDEX ix_history_all_lu ON resource_history (lu)",
        """CREATE TABLE idx_token (res_type TEXT NOT NULL, res_id TEXT NOT NULL,
            param TEXT NOT NULL, system TEXT, code TEXT, type_system TEXT, type_code TEXT)""",
        "CREATE INDEX ix_token ON idx_token (res_type, param, code)",
        "CREATE INDEX ix_token_res ON idx_token (res_type, res_id)",
        """CREATE TABLE idx_string (res_type TEXT NOT NULL, res_id TEXT NOT NULL,
            param TEXT NOT NULL, value TEXT NOT NULL, raw TEXT NOT NULL)""",
        "CREATE INDEX ix_string ON idx_string (res_type, param, value)",
        "CREATE INDEX ix_string_res ON idx_string (res_type, res_id)",
        """CREATE TABLE idx_date (res_type TEXT NOT NULL, res_id TEXT NOT NULL,
            param TEXT NOT NULL, lo TEXT NOT NULL, hi TEXT NOT NULL)""",
        "CREATE INDEX ix_date ON idx_date (res_type, param, lo)",
        "CREATE INDEX ix_date_res ON idx_date (res_type, res_id)",
        """CREATE TABLE idx_ref (res_type TEXT NOT NULL, res_id TEXT NOT NULL,
            param TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL)""",
        "CREATE INDEX ix_ref_target ON idx_ref (target_type, target_id, param)",
        "CREATE INDEX ix_ref_res ON idx_ref (res_type, res_id)",
        """CREATE TABLE unique_ident (kind TEXT NOT NULL, system TEXT NOT NULL,
            value TEXT NOT NULL, res_type TEXT NOT NULL, res_id TEXT NOT NULL,
            PRIMARY KEY (kind, system, value))""",
        "CREATE INDEX ix_unique_res ON unique_ident (res_type, res_id)",
    ),
)

_PG_PATTERN = Migration(
    2,
    "prefix (LIKE 'abc%') index on PostgreSQL string values; date upper-bound index",
    (
        "postgresql: CREATE INDEX ix_string_pattern ON idx_string "
        "(res_type, param, value text_pattern_ops)",
        "CREATE INDEX ix_date_hi ON idx_date (res_type, param, hi)",
    ),
)

_COVERING_REFS = Migration(
    3,
    "covering reference indexes (planners otherwise scan all references of a type)",
    (
        "DROP INDEX IF EXISTS ix_ref_target",
        "DROP INDEX IF EXISTS ix_ref_res",
        "CREATE INDEX ix_ref_target2 ON idx_ref (target_type, target_id, param, res_type, res_id)",
        "CREATE INDEX ix_ref_res2 ON idx_ref (res_type, res_id, param, target_type, target_id)",
    ),
)

_CURRENT_NOT_IN_HISTORY = Migration(
    200,
    "current versions live only in the resource row; history keeps the superseded ones",
    (
        "ALTER TABLE resource ADD COLUMN method TEXT NOT NULL DEFAULT ''",
        """UPDATE resource SET method = COALESCE((SELECT h.method FROM resource_history h
            WHERE h.res_type = resource.res_type AND h.res_id = resource.res_id
            AND h.version = resource.version), '')""",
        """DELETE FROM resource_history WHERE EXISTS (SELECT 1 FROM resource r
            WHERE r.res_type = resource_history.res_type AND r.res_id = resource_history.res_id
            AND r.version = resource_history.version)""",
    ),
)


def _clustered(
    table: str, columns: str, key: str, fill: str, indexes: tuple[str, ...]
) -> tuple[str, ...]:
    """SQLite: rebuild ``table`` as WITHOUT ROWID, clustered on ``key``; ``fill`` selects the
    old rows in the new column order."""
    return (
        f"sqlite: CREATE TABLE {table}_new ({columns}, PRIMARY KEY ({key})) WITHOUT ROWID",
        f"sqlite: INSERT OR IGNORE INTO {table}_new {fill}",
        f"sqlite: DROP TABLE {table}",
        f"sqlite: ALTER TABLE {table}_new RENAME TO {table}",
        *(f"sqlite: {ddl}" for ddl in indexes),
    )


# SQLite: the reference index is a B-tree clustered on its source resource (the rows of one
# resource stored together, found by key), so the separate (res_type, res_id, …) index and the
# rowids go, and a reference listed twice is stored once. (Clustering the token, string and
# date tables as well saved under 5 % of their size and led SQLite's planner, without
# statistics, to scan a type's whole key range for identifier searches; they stay as they are.)
_CLUSTERED_REFS = Migration(
    201,
    "SQLite: reference index clustered on the source resource (WITHOUT ROWID)",
    _clustered(
        "idx_ref",
        "res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL, "
        "target_type TEXT NOT NULL, target_id TEXT NOT NULL",
        "res_type, res_id, param, target_type, target_id",
        "SELECT res_type, res_id, param, target_type, target_id FROM idx_ref",
        (
            "CREATE INDEX ix_ref_target2 ON idx_ref "
            "(target_type, target_id, param, res_type, res_id)",
        ),
    ),
)

# SQLite: without statistics the planner takes ``target_type = ?`` on the reference index for
# selective and answers "which Patients do these resources reference" (the audit hook, per
# write) by scanning every Patient reference: 30–60 ms per order at 10,000 orders, growing
# with the database. Fixed statistics (the shape, not the counts, matters: a resource has a
# few reference rows, a target type very many) make it look rows up by resource instead. An
# ``ANALYZE`` run by hand later replaces them with measured ones, which says the same.
_REF_STATS = Migration(
    202,
    "SQLite: planner statistics for the reference index",
    (
        "sqlite: ANALYZE sqlite_master",  # creates sqlite_stat1; reloads statistics
        "sqlite: DELETE FROM sqlite_stat1 WHERE tbl = 'idx_ref'",
        "sqlite: INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES "
        "('idx_ref', 'idx_ref', '1000000 100000 5 2 2 1'), "
        "('idx_ref', 'ix_ref_target2', '1000000 100000 10 5 2 1')",
        "sqlite: ANALYZE sqlite_master",  # creates sqlite_stat1; reloads statistics
    ),
)


# Integer keys for the search index (issue 15). Index rows carried the source resource as
# (res_type, res_id) text — a 36-character UUID in every row and again in every index over it,
# inserted at random places in two B-trees per table. Now ``resource`` has an integer ``rid``
# (SQLite: the rowid, declared, so VACUUM keeps it; PostgreSQL: an identity column) and
# ``search_param`` numbers each (resource type, parameter name) as ``pid``; an index row is
# (rid, pid, n, values…), ``n`` numbering a resource's rows of one parameter. New resources get
# increasing rids, so their index rows append at the end of the (rid, pid, n) B-tree. Reference
# targets stay text (type, id): a reference may name a resource that is stored later. The
# unique identifiers name their owner by rid too.
_INDEX_TABLES_220 = {
    "idx_token": (
        "system TEXT, code TEXT, type_system TEXT, type_code TEXT",
        "system, code, type_system, type_code",
        "idx_token",
        ("CREATE INDEX ix_token ON idx_token (pid, code, rid)",),
    ),
    "idx_string": (
        "value TEXT NOT NULL, raw TEXT NOT NULL",
        "value, raw",
        "idx_string",
        (
            "CREATE INDEX ix_string ON idx_string (pid, value)",
            "postgresql: CREATE INDEX ix_string_pattern ON idx_string "
            "(pid, value text_pattern_ops)",
        ),
    ),
    "idx_date": (
        "lo TEXT NOT NULL, hi TEXT NOT NULL",
        "lo, hi",
        "idx_date",
        (
            "CREATE INDEX ix_date ON idx_date (pid, lo)",
            "CREATE INDEX ix_date_hi ON idx_date (pid, hi)",
        ),
    ),
    "idx_ref": (
        "target_type TEXT NOT NULL, target_id TEXT NOT NULL",
        "target_type, target_id",
        # a reference listed twice is one row (PostgreSQL kept duplicates before)
        "(SELECT DISTINCT res_type, res_id, param, target_type, target_id FROM idx_ref)",
        ("CREATE INDEX ix_ref_target ON idx_ref (target_id, target_type, pid, rid)",),
    ),
}


def _int_key_table(table: str) -> tuple[str, ...]:
    columns, names, source, indexes = _INDEX_TABLES_220[table]
    create = (
        f"CREATE TABLE {table}_new (rid BIGINT NOT NULL, pid INTEGER NOT NULL, "
        f"n INTEGER NOT NULL, {columns}, PRIMARY KEY (rid, pid, n))"
    )
    return (
        f"sqlite: {create} WITHOUT ROWID",
        f"postgresql: {create}",
        f"INSERT INTO {table}_new (rid, pid, n, {names}) SELECT r.rid, p.pid, "
        "ROW_NUMBER() OVER (PARTITION BY t.res_type, t.res_id, t.param) - 1, "
        + ", ".join(f"t.{c.strip()}" for c in names.split(","))
        + f" FROM {source} t JOIN resource r ON r.res_type = t.res_type AND r.res_id = t.res_id "
        "JOIN search_param p ON p.res_type = t.res_type AND p.name = t.param",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_new RENAME TO {table}",
        f"postgresql: ALTER TABLE {table} RENAME CONSTRAINT {table}_new_pkey TO {table}_pkey",
        *indexes,
    )


_RESOURCE_COLS = "res_type, res_id, version, last_updated, lu, deleted, content, method"

_INT_KEYS = Migration(
    220,
    "integer keys for the search index: resource.rid, search_param.pid",
    (
        # SQLite: rebuild with rid as the declared rowid (the old rowids kept)
        """sqlite: CREATE TABLE resource_new (rid INTEGER PRIMARY KEY,
            res_type TEXT NOT NULL, res_id TEXT NOT NULL, version INTEGER NOT NULL,
            last_updated TEXT NOT NULL, lu TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            content TEXT, method TEXT NOT NULL DEFAULT '')""",
        f"sqlite: INSERT INTO resource_new (rid, {_RESOURCE_COLS}) "
        f"SELECT rowid, {_RESOURCE_COLS} FROM resource ORDER BY rowid",
        "sqlite: DROP TABLE resource",
        "sqlite: ALTER TABLE resource_new RENAME TO resource",
        "sqlite: CREATE UNIQUE INDEX ux_resource ON resource (res_type, res_id)",
        "sqlite: CREATE INDEX ix_resource_lu ON resource (res_type, lu)",
        "postgresql: ALTER TABLE resource ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY",
        "postgresql: CREATE UNIQUE INDEX ux_resource_rid ON resource (rid)",
        """CREATE TABLE search_param (pid {autoinc}, res_type TEXT NOT NULL,
            name TEXT NOT NULL, UNIQUE (res_type, name))""",
        "INSERT INTO search_param (res_type, name) SELECT res_type, param FROM ("
        "SELECT res_type, param FROM idx_token UNION SELECT res_type, param FROM idx_string "
        "UNION SELECT res_type, param FROM idx_date UNION SELECT res_type, param FROM idx_ref"
        ") u ORDER BY res_type, param",
        *(s for table in _INDEX_TABLES_220 for s in _int_key_table(table)),
        # rows of reference aliases (``patient`` = the ``subject`` rows of a Patient target):
        # searches read the base parameter's rows (``search_sql.REF_ALIASES``)
        "DELETE FROM idx_ref WHERE pid IN (SELECT pid FROM search_param WHERE name = 'patient' "
        "AND res_type IN ('Encounter', 'ImagingStudy', 'Observation', 'Flag', 'Procedure', "
        "'ServiceRequest', 'Task'))",
        """CREATE TABLE unique_ident_new (kind TEXT NOT NULL, system TEXT NOT NULL,
            value TEXT NOT NULL, rid BIGINT NOT NULL, PRIMARY KEY (kind, system, value))""",
        "INSERT INTO unique_ident_new (kind, system, value, rid) SELECT u.kind, u.system, "
        "u.value, r.rid FROM unique_ident u JOIN resource r ON r.res_type = u.res_type "
        "AND r.res_id = u.res_id",
        "DROP TABLE unique_ident",
        "ALTER TABLE unique_ident_new RENAME TO unique_ident",
        "postgresql: ALTER TABLE unique_ident RENAME CONSTRAINT unique_ident_new_pkey "
        "TO unique_ident_pkey",
        "CREATE INDEX ix_unique_rid ON unique_ident (rid)",
        # SQLite planner statistics (no ANALYZE has run; see migration 202): the shape, not the
        # counts, matters. A resource type has very many rows, a resource few index rows, a
        # parameter many, a reference target few. Without them SQLite takes ``res_type = ?``
        # on the resource for as selective as ``rid IN (…)`` and walks a whole type.
        "sqlite: DELETE FROM sqlite_stat1 WHERE tbl IN ('idx_ref', 'idx_token', "
        "'idx_string', 'idx_date', 'resource')",
        "sqlite: INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES "
        "('resource', 'ux_resource', '1000000 100000 1'), "
        "('resource', 'ix_resource_lu', '1000000 100000 2'), "
        "('idx_ref', 'idx_ref', '5000000 5 2 1'), "
        "('idx_ref', 'ix_ref_target', '5000000 5 4 3 1'), "
        "('idx_token', 'idx_token', '8000000 8 2 1'), "
        "('idx_token', 'ix_token', '8000000 100000 5 1'), "
        "('idx_string', 'idx_string', '2000000 2 1 1'), "
        "('idx_string', 'ix_string', '2000000 200000 5'), "
        "('idx_date', 'idx_date', '2000000 2 1 1'), "
        "('idx_date', 'ix_date', '2000000 200000 5'), "
        "('idx_date', 'ix_date_hi', '2000000 200000 5')",
        "sqlite: ANALYZE sqlite_master",  # reloads statistics
    ),
)

MIGRATIONS: list[Migration] = [
    _CORE,
    _PG_PATTERN,
    _COVERING_REFS,
    _CURRENT_NOT_IN_HISTORY,
    _CLUSTERED_REFS,
    _REF_STATS,
    _INT_KEYS,
]


def register(migration: Migration) -> None:
    """Add a component's migration; versions must be unique."""
    if any(m.version == migration.version for m in MIGRATIONS):
        raise ValueError(f"migration version {migration.version} registered twice")
    MIGRATIONS.append(migration)
    MIGRATIONS.sort(key=lambda m: m.version)


def _expand(sql: str, dialect: str) -> str | None:
    """Dialect-specific statements start with ``sqlite:`` or ``postgresql:``; others run on both."""
    for prefix in ("sqlite:", "postgresql:"):
        if sql.startswith(prefix):
            if prefix[:-1] != dialect:
                return None
            sql = sql[len(prefix) :]
    autoinc = (
        "INTEGER PRIMARY KEY AUTOINCREMENT"
        if dialect == "sqlite"
        else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    )
    return sql.replace("{autoinc}", autoinc)


def _applied(conn: Conn) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(db: Database) -> list[int]:
    """Apply every missing migration in order; return the versions applied now."""
    done: list[int] = []
    with db.transaction(write=True) as conn:
        if db.dialect == "postgresql":
            conn.execute("SELECT pg_advisory_xact_lock(424242)")
        applied = _applied(conn)
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                expanded = _expand(statement, db.dialect)
                if expanded is not None:
                    conn.execute(expanded)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                (migration.version, migration.name),
            )
            done.append(migration.version)
    return done


def current_version(db: Database) -> int:
    with db.transaction(write=False) as conn:
        versions = _applied(conn)
    return max(versions, default=0)
