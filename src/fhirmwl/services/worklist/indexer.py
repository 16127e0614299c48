"""Keep the ``worklist`` table current inside every write transaction.

``WorklistIndexer`` is a store ``WriteHook``: before a unit of work commits, it finds the Tasks
whose graph the work touched, rebuilds their DICOM worklist items with the pure mapping and
upserts (or removes) their index rows — so the very next C-FIND sees the change, and a rolled
back write leaves the index untouched. Items that cannot be completed (a type-1 value is
missing) or whose Task status is not shown are removed and logged with the Task id only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.config import Settings
from fhirmwl.fhir.model import generated_tag
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, WorklistGraph
from fhirmwl.mapping.fhir_to_dicom.item import build_worklist_item_result
from fhirmwl.services.worklist.graph import affected_tasks, load_graph
from fhirmwl.services.worklist.source import StoreWorklistSource
from fhirmwl.services.worklist.stations import StationRules
from fhirmwl.store import Tx
from fhirmwl.store.migrations import Migration, register
from fhirmwl.worklist.row import (
    MULTI_STATION,
    ROW_COLUMNS,
    WORKLIST_DDL,
    station_titles,
    worklist_row,
)

log = logging.getLogger("fhirmwl.worklist")

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
        for task_id in affected_tasks(tx, touched):
            self.reindex(tx, task_id)

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

    def reindex(self, tx: Tx, task_id: str) -> bool:
        """Rebuild one Task's row; True when it is on the worklist afterwards."""
        stored = tx.read("Task", task_id)
        result = None
        if stored is not None and not stored.deleted:
            task = stored.resource()
            result = build_worklist_item_result(self._with_station(load_graph(tx, task)), self.ctx)
        tx.conn.execute("DELETE FROM worklist_station WHERE task_id = ?", (task_id,))
        if result is None or result.dataset is None:
            tx.conn.execute("DELETE FROM worklist WHERE task_id = ?", (task_id,))
            if result is not None:
                log.info("Task/%s not on the worklist: %s", task_id, result.reason)
            return False
        row = worklist_row(result.dataset, task_id, tz=self.ctx.timezone, sps_start=_start(task))
        tx.conn.execute(_UPSERT, [row[c] for c in ROW_COLUMNS])
        if row["station_aet"] == MULTI_STATION:
            for aet in dict.fromkeys(station_titles(result.dataset)):
                tx.conn.execute(
                    "INSERT INTO worklist_station (task_id, station_aet) VALUES (?, ?)",
                    (task_id, aet),
                )
        return True


def install(services: Any) -> WorklistIndexer:
    register_migration()
    settings = services.settings
    indexer = WorklistIndexer(
        mapping_context(settings),
        StationRules.from_settings(settings.extra.get("station_rules", [])),
    )
    services.store.add_hook(indexer)
    services.extra["worklist_indexer"] = indexer
    services.extra["worklist_source"] = StoreWorklistSource(
        services.store, settings.worklist_retention_days
    )
    from fhirmwl.services.worklist.listener import DicomListener

    services.listener_factories.append(("dicom", DicomListener))
    return indexer


def register_migration() -> None:
    from fhirmwl.store import migrations

    for migration in (WORKLIST_MIGRATION, STATION_MIGRATION):
        if not any(m.version == migration.version for m in migrations.MIGRATIONS):
            register(migration)
