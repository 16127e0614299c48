"""Keep the ``worklist`` table current inside every write transaction.

``WorklistIndexer`` is a store ``WriteHook``: before a unit of work commits, it finds the Tasks
whose graph the work touched, rebuilds their DICOM worklist items with the pure mapping and
upserts (or removes) their index rows — so the very next C-FIND sees the change, and a rolled
back write leaves the index untouched. Items that cannot be completed (a type-1 value is
missing) or whose Task status is not shown are removed and logged with the Task id only.

The order pipeline (``services.orders.pipeline``) asks ``index_now`` inside its unit of work, so
that its answer can say which steps did not reach the worklist and why; the commit hook then
skips the Tasks already indexed when nothing of their graph changed since.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.config import Settings
from fhirmwl.fhir.model import generated_tag
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, WorklistGraph
from fhirmwl.mapping.fhir_to_dicom.item import ItemResult, build_worklist_item_result
from fhirmwl.services.worklist.graph import affected_tasks, load_graph
from fhirmwl.services.worklist.source import StoreWorklistSource
from fhirmwl.services.worklist.stations import StationRules
from fhirmwl.store import Tx
from fhirmwl.store.migrations import Migration, register
from fhirmwl.worklist.itemcodec import pack_item
from fhirmwl.worklist.row import (
    MULTI_STATION,
    ROW_COLUMNS,
    WORKLIST_DDL,
    station_titles,
    worklist_row,
)

log = logging.getLogger("fhirmwl.worklist")
_DONE = "_worklist_indexed"  # per unit of work: Task id → reason, set by ``index_now``
_MARK = "_worklist_indexed_at"  # len(tx.touched) when ``index_now`` last ran

WORKLIST_MIGRATION = Migration(
    10,
    "worklist index (one row per scheduled procedure step)",
    (
        *WORKLIST_DDL,
        "CREATE INDEX IF NOT EXISTS worklist_modality_start ON worklist (modality, sps_start_date)",
    ),
)
# Steps scheduled on several stations (Scheduled Station AE Title VM > 1) carry a sentinel in
# ``worklist.station_aet``; this table lists their AE titles so the FHIR ``station-aet`` search
# finds them like C-FIND does (issue 14).
STATION_MIGRATION = Migration(
    150,
    "worklist stations of multi-station steps",
    (
        "CREATE TABLE IF NOT EXISTS worklist_station ("
        "task_id TEXT NOT NULL, station_aet TEXT NOT NULL, PRIMARY KEY (task_id, station_aet))",
        "CREATE INDEX IF NOT EXISTS worklist_station_aet ON worklist_station (station_aet)",
    ),
)
# Issue 15: ``item_json`` holds the item deflated with a preset dictionary
# (``fhirmwl.worklist.itemcodec``), on PostgreSQL in a BYTEA; text rows written before stay
# readable and are packed when next rewritten (``fhirmwl reindex`` rewrites them all).
COMPACT_MIGRATION = Migration(
    240,
    "worklist item JSON deflated (BYTEA on PostgreSQL)",
    (
        "postgresql: ALTER TABLE worklist ALTER COLUMN item_json TYPE BYTEA "
        "USING convert_to(item_json, 'UTF8')",
    ),
)
# SQLite: without statistics the planner answers the usual C-FIND (one station, one day) from
# ``worklist_start`` — every step of that day, of all stations, read and filtered — rather than
# from ``worklist_station_start``. Fixed statistics of the worklist's shape (about 40 stations,
# a station-day holding tens of steps, a day hundreds to thousands) make it pick the station
# index; the broad, date-only, patient and accession queries keep their indexes. An
# ``ANALYZE`` run by hand later replaces them with measured ones.
STATS_MIGRATION = Migration(
    242,
    "SQLite: planner statistics for the worklist indexes",
    (
        "sqlite: ANALYZE sqlite_master",  # creates sqlite_stat1
        "sqlite: DELETE FROM sqlite_stat1 WHERE tbl = 'worklist'",
        "sqlite: INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES "
        "('worklist', 'sqlite_autoindex_worklist_1', '1000000 1'), "
        "('worklist', 'worklist_station_start', '1000000 25000 70 2'), "
        "('worklist', 'worklist_start', '1000000 2800 2'), "
        "('worklist', 'worklist_modality_start', '1000000 100000 280'), "
        "('worklist', 'worklist_patient_id', '1000000 3'), "
        "('worklist', 'worklist_accession', '1000000 1')",
        "sqlite: ANALYZE sqlite_master",  # reloads the statistics
    ),
)
_UPSERT = (
    f"INSERT INTO worklist ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})"
    " ON CONFLICT (task_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS if c != "task_id")
)


def mapping_context(settings: Settings) -> DicomMappingContext:
    statuses = frozenset(s.strip() for s in settings.worklist_statuses.split(",") if s.strip())
    return DicomMappingContext(timezone=ZoneInfo(settings.timezone), worklist_statuses=statuses)


def _start(task: dict[str, Any]) -> datetime | None:
    value = (task.get("requestedPeriod") or {}).get("start")
    if not value or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


class WorklistIndexer:
    def __init__(self, ctx: DicomMappingContext, rules: StationRules | None = None) -> None:
        self.ctx = ctx
        self.rules = rules or StationRules([])

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        done: dict[str, str | None] = vars(tx).get(_DONE) or {}
        later = tx.touched[vars(tx).get(_MARK, 0) :]
        # Rows built by ``index_now`` stay current when only those Tasks changed since.
        skip = set(done) if all(t == "Task" and i in done for t, i in later) else set()
        for task_id in affected_tasks(tx, touched):
            if task_id not in skip:
                self.reindex(tx, task_id)

    def index_now(self, tx: Tx, task_ids: list[str]) -> dict[str, tuple[str | None, Any]]:
        """Index ``task_ids`` now; Task id → (None when on the worklist, else the reason it is
        not; the Task as read, a ``Stored`` or None when deleted).

        The commit hook skips these Tasks unless something other than the Tasks themselves
        changes in the unit of work afterwards (the caller may record the reason on the Task).
        """
        out = {}
        for task_id in task_ids:
            stored = tx.read("Task", task_id)
            out[task_id] = (self.reason(tx, task_id, stored), stored)
        vars(tx).setdefault(_DONE, {}).update({k: v[0] for k, v in out.items()})
        vars(tx)[_MARK] = len(tx.touched)
        return out

    def _with_station(self, graph: WorklistGraph) -> WorklistGraph:
        if graph.device is not None:
            return graph
        ae = self.rules.station_for(graph)
        if ae is None:
            return graph
        device = {
            "resourceType": "Device",
            "name": [{"value": ae, "type": "registered-name"}],
            "meta": {"tag": [generated_tag("scheduled-station", "station rule")]},
        }
        return WorklistGraph(**{**graph.__dict__, "device": device})

    def item_result(self, tx: Tx, task: dict[str, Any]) -> ItemResult:
        """The worklist item of one Task, or the reason it has none (the web desk shows it)."""
        return build_worklist_item_result(self._with_station(load_graph(tx, task)), self.ctx)

    def reindex(self, tx: Tx, task_id: str) -> bool:
        """Rebuild one Task's row; True when it is on the worklist afterwards."""
        return self.reason(tx, task_id) is None

    def reason(self, tx: Tx, task_id: str, stored: Any = False) -> str | None:
        """Rebuild one Task's row; None when it is on the worklist, else why it is not."""
        if stored is False:
            stored = tx.read("Task", task_id)
        result = None
        if stored is not None and not stored.deleted:
            task = stored.resource()
            result = self.item_result(tx, task)
        tx.conn.execute("DELETE FROM worklist_station WHERE task_id = ?", (task_id,))
        if result is None or result.item is None:
            tx.conn.execute("DELETE FROM worklist WHERE task_id = ?", (task_id,))
            if result is not None:
                log.info("Task/%s not on the worklist: %s", task_id, result.reason)
                return result.reason or "not on the worklist"
            return "the Task was deleted"
        row = worklist_row(result.item, task_id, tz=self.ctx.timezone, sps_start=_start(task))
        row["item_json"] = pack_item(row["item_json"])
        tx.conn.execute(_UPSERT, [row[c] for c in ROW_COLUMNS])
        if row["station_aet"] == MULTI_STATION:
            for aet in dict.fromkeys(station_titles(result.item)):
                tx.conn.execute(
                    "INSERT INTO worklist_station (task_id, station_aet) VALUES (?, ?)",
                    (task_id, aet),
                )
        return None


def install(services: Any) -> WorklistIndexer:
    register_migration()
    settings = services.settings
    indexer = WorklistIndexer(
        mapping_context(settings),
        StationRules.from_settings(settings.extra.get("station_rules", [])),
    )
    services.store.add_hook(indexer)
    services.worklist_indexer = indexer
    services.worklist_source = StoreWorklistSource(services.store, settings.worklist_retention_days)
    from fhirmwl.services.worklist.listener import DicomListener

    services.listener_factories.append(("dicom", DicomListener))
    return indexer


def register_migration() -> None:
    from fhirmwl.store import migrations

    for migration in (
        WORKLIST_MIGRATION,
        STATION_MIGRATION,
        COMPACT_MIGRATION,
        STATS_MIGRATION,
    ):
        if not any(m.version == migration.version for m in migrations.MIGRATIONS):
            register(migration)
