"""Issue 15, the worklist and audit rows: the worklist item and the AuditEvent are stored
deflated with a preset dictionary (on PostgreSQL in a BYTEA), the SQLite ``audit_ref`` is a
WITHOUT ROWID table keyed by (kind, ref, audit_id). Migrations 240/241 convert a database
written before, on both backends: its rows stay readable, searchable and purgeable; 242 gives
SQLite's planner the worklist's shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fhirmwl.audit import store as audit_store
from fhirmwl.audit.codec import AUDIT_CODEC, pack_content, unpack_content
from fhirmwl.audit.events import REST, AuditRecord, interaction, to_fhir
from fhirmwl.services.worklist import indexer
from fhirmwl.services.worklist.source import StoreWorklistSource
from fhirmwl.store import Store, open_store
from fhirmwl.store.db import open_database
from fhirmwl.store.migrations import MIGRATIONS
from fhirmwl.worklist.itemcodec import pack_item, unpack_item
from fhirmwl.worklist.query import WorklistQuery
from fhirmwl.worklist.row import ROW_COLUMNS, worklist_row
from fhirmwl.worklist.sql import query_to_sql
from tests.conftest import migrate_before

_ITEM = {
    "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
    "00080050": {"vr": "SH", "Value": ["ACC1"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jörg"}]},
    "00100020": {"vr": "LO", "Value": ["PID1"]},
    "0020000D": {"vr": "UI", "Value": ["2.25.1"]},
    "00400100": {
        "vr": "SQ",
        "Value": [
            {
                "00080060": {"vr": "CS", "Value": ["CT"]},
                "00400001": {"vr": "AE", "Value": ["CT1"]},
                "00400002": {"vr": "DA", "Value": ["20260201"]},
                "00400003": {"vr": "TM", "Value": ["080000"]},
                "00400009": {"vr": "SH", "Value": ["SPS1"]},
                "00400020": {"vr": "CS", "Value": ["SCHEDULED"]},
            }
        ],
    },
    "00401001": {"vr": "SH", "Value": ["RP1"]},
}


def _record(n: int, entities: list[str]) -> AuditRecord:
    return AuditRecord(
        recorded=f"2025-01-0{n}T00:00:00.000Z",
        door="http",
        action="C",
        category=REST,
        code=interaction("create"),
        agent_id="client-a",
        agent_network="127.0.0.1",
        patients=["p1"],
        entities=entities,
        query=b"status=active",
        details={"method": "POST", "path": "/fhir"},
    )


@pytest.fixture
def registered() -> Iterator[None]:
    kept = list(MIGRATIONS)
    indexer.register_migration()
    audit_store.register_migration()
    yield
    MIGRATIONS[:] = kept


def _old_database(db_url: str) -> AuditRecord:
    """Migrations before 240, a worklist row and an audit event written as they were then."""
    db = open_database(db_url)
    migrate_before(db, 240)
    row = worklist_row(_ITEM, "t1")
    rec = _record(1, ["Task/t1", "Task/t1", "ServiceRequest/s1"])
    with db.transaction(write=True) as conn:
        marks = ", ".join("?" * len(ROW_COLUMNS))
        conn.execute(
            f"INSERT INTO worklist ({', '.join(ROW_COLUMNS)}) VALUES ({marks})",
            [row[c] for c in ROW_COLUMNS],
        )
        (audit_id,) = conn.execute(
            "INSERT INTO audit_event (recorded, door, action, category, code, outcome, agent, "
            "source, content) VALUES (?, 'http', 'C', 'rest', 'create', '0', 'client-a', "
            "'fhirmwl', ?) RETURNING id",
            (rec.recorded, orjson.dumps(to_fhir(rec)).decode()),
        ).fetchone()
        conn.executemany(
            "INSERT INTO audit_ref (audit_id, kind, ref) VALUES (?, ?, ?)",
            [
                (audit_id, "patient", "Patient/p1"),
                (audit_id, "entity", "Task/t1"),
                (audit_id, "entity", "Task/t1"),  # written twice before: kept once now
                (audit_id, "entity", "ServiceRequest/s1"),
            ],
        )
    db.close()
    return rec


def _count(store: Store, sql: str) -> int:
    with store.read() as tx:
        return int(tx.conn.execute(sql).fetchone()[0])


def test_migrations_240_241_convert_an_old_database(db_url: str, registered: None) -> None:
    old = _old_database(db_url)
    store = open_store(db_url)  # applies 240 and 241
    try:
        source = StoreWorklistSource(store)
        assert [item for _, item in source.find_json_with_ids(WorklistQuery.from_keywords({}))] == [
            _ITEM
        ]
        assert (
            source.rows(WorklistQuery.from_keywords({}))[0][1]
            == worklist_row(_ITEM, "t1")["item_json"]
        )
        found = source.item("t1")
        assert found is not None and str(found.PatientName) == "Müller^Jörg"
        with store.write() as tx:
            (new_id,) = audit_store.insert(tx.conn, [_record(2, ["Task/t1", "Task/t1"])])
            # one patient and one entity reference: a reference listed twice is stored once
        with store.read() as tx:
            events = audit_store.search(tx.conn, [("entity", "Task/t1")], 10)
            assert [e["id"] for e in events] == [str(new_id), str(new_id - 1)]
            first = {**to_fhir(old), "id": str(new_id - 1), "meta": {"lastUpdated": old.recorded}}
            assert events[1] == first
            assert audit_store.search(tx.conn, [("patient", "p1")], 10) == events
            raw = tx.conn.execute(
                "SELECT content FROM audit_event WHERE id = ?", (new_id,)
            ).fetchone()[0]
            assert bytes(raw)[0] == AUDIT_CODEC.version
        # SQLite keys the rows by all their columns now; PostgreSQL keeps them as they were
        old_refs = 3 if store.db.dialect == "sqlite" else 4
        assert _count(store, "SELECT COUNT(*) FROM audit_ref") == old_refs + 2
        with store.write() as tx:  # retention deletes the refs of the purged events by key
            assert audit_store.purge_before(tx.conn, "2025-01-01T12:00:00Z", 100, True) == 1
        assert _count(store, f"SELECT COUNT(*) FROM audit_ref WHERE audit_id = {new_id - 1}") == 0
        assert _count(store, "SELECT COUNT(*) FROM audit_ref") == 2
        with store.read() as tx:
            (left,) = audit_store.search(tx.conn, [("entity", "Task/t1")], 10)
            assert left["id"] == str(new_id)
    finally:
        store.close()


def test_codecs_round_trip_and_refuse_unknown_formats() -> None:
    text = orjson.dumps(_ITEM).decode()
    packed = pack_item(text)
    assert len(packed) < len(text) / 2 and unpack_item(packed) == text
    assert unpack_item(text) == text and unpack_item(text.encode()) == text
    content = orjson.dumps(to_fhir(_record(1, ["Task/t1"]))).decode()
    assert unpack_content(pack_content(content)) == content
    with pytest.raises(ValueError, match="unknown format"):
        unpack_item(pack_content(content))
    with pytest.raises(ValueError, match="unknown format"):
        unpack_content(packed)


def test_sqlite_answers_one_station_day_from_the_station_index(
    tmp_path: Path, registered: None
) -> None:
    """Migration 242: with its fixed statistics SQLite reads one station's steps of the day, not
    every step of that day (the plan it chose without statistics)."""
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        q = WorklistQuery.from_keywords(
            {
                "ScheduledProcedureStepSequence.ScheduledStationAETitle": "CT1",
                "ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate": "20260201",
            }
        )
        where, params = query_to_sql(q)
        with store.read() as tx:
            plan = tx.conn.execute(
                f"EXPLAIN QUERY PLAN SELECT task_id, item_json FROM worklist WHERE {where}"
                " ORDER BY sps_start_date, sps_start_time, task_id",
                params,
            ).fetchall()
        assert "worklist_station_start" in " ".join(str(r[-1]) for r in plan)
    finally:
        store.close()
