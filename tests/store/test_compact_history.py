"""The storage layout of issue 15: the current version only in ``resource``, superseded versions
in ``resource_history``; migration 200 converts a database written with the old layout (every
version, the current one included, in history), on both backends; migration 201 rebuilds the
SQLite reference index clustered on its source resource."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirmwl.errors import BadRequest, DuplicateIdentifier
from fhirmwl.fhir.search import parse_search
from fhirmwl.store import Store, codec, open_store
from fhirmwl.store.db import open_database
from tests.conftest import migrate_before


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def _count(store: Store, sql: str) -> int:
    with store.read() as tx:
        return int(tx.conn.execute(sql).fetchone()[0])


def test_history_holds_only_superseded_versions(store: Store) -> None:
    with store.write() as tx:
        pid = tx.create("Patient", {"name": [{"family": "One"}]}).res_id
    assert _count(store, "SELECT COUNT(*) FROM resource_history") == 0
    with store.write() as tx:
        tx.update("Patient", pid, {"name": [{"family": "Two"}]})
    with store.write() as tx:
        tx.delete("Patient", pid)
    # versions 1 and 2 are superseded; version 3 (the deletion) is the current row
    assert _count(store, "SELECT COUNT(*) FROM resource_history") == 2
    with store.read() as tx:
        versions = [(s.version, s.method, s.deleted) for s in tx.history("Patient", pid, 10, 0)]
        assert versions == [(3, "DELETE", True), (2, "PUT", False), (1, "POST", False)]
        first, second, third = (tx.vread("Patient", pid, v) for v in (1, 2, 3))
        assert first is not None and first.resource()["name"][0]["family"] == "One"
        assert second is not None and second.resource()["name"][0]["family"] == "Two"
        assert third is not None and third.deleted and third.content is None
        assert tx.vread("Patient", pid, 4) is None
        assert [s.res_id for s in tx.history(None, None, 10, 0)] == [pid] * 3
    with store.write() as tx:  # re-created after deletion: the deletion becomes history
        again, created = tx.update("Patient", pid, {"name": [{"family": "Three"}]})
    assert again.version == 4 and not created
    with store.read() as tx:
        assert [s.version for s in tx.history("Patient", pid, 2, 1)] == [3, 2]


def test_unique_identifier_clash_writes_nothing(store: Store) -> None:
    acsn = {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
        },
        "system": "urn:acsn",
        "value": "A1",
    }
    order = {"status": "active", "intent": "order", "identifier": [acsn, acsn]}
    with store.write() as tx:
        first = tx.create("ServiceRequest", order).res_id  # the same identifier twice: one row
    with (
        pytest.raises(DuplicateIdentifier, match=f"ServiceRequest/{first}"),
        store.write() as tx,
    ):
        tx.create("ServiceRequest", order)
    assert _count(store, "SELECT COUNT(*) FROM resource") == 1
    assert _count(store, "SELECT COUNT(*) FROM unique_ident") == 1
    with store.write() as tx:  # the owner may keep its identifier across updates
        tx.update("ServiceRequest", first, {**order, "status": "completed"})


def _old_layout(db_url: str) -> None:
    """Migrations before 200, rows written the way the store wrote them then."""
    db = open_database(db_url)
    migrate_before(db, 200)
    v1 = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}, "gender": "male"}
    v2: dict[str, Any] = {**v1, "meta": {"versionId": "2"}, "gender": "female"}
    cols = "res_type, res_id, version, last_updated, lu"
    with db.transaction(write=True) as conn:
        conn.execute(
            f"INSERT INTO resource ({cols}, deleted, content) VALUES (?, ?, ?, ?, ?, 0, ?)",
            ("Patient", "p1", 2, "2025-01-02T00:00:00Z", "2025-01-02", orjson.dumps(v2).decode()),
        )
        for version, method, body in ((1, "POST", v1), (2, "PUT", v2)):
            conn.execute(
                f"INSERT INTO resource_history ({cols}, method, deleted, content) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    "Patient",
                    "p1",
                    version,
                    f"2025-01-0{version}T00:00:00Z",
                    f"2025-01-0{version}",
                    method,
                    orjson.dumps(body).decode(),
                ),
            )
        # index rows as the old layout held them: a reference listed twice, two tokens
        conn.execute(
            "INSERT INTO idx_token (res_type, res_id, param, system, code) VALUES "
            "('Patient', 'p1', 'gender', NULL, 'female'), ('Patient', 'p1', '_id', NULL, 'p1')"
        )
        conn.execute(
            "INSERT INTO idx_ref (res_type, res_id, param, target_type, target_id) VALUES "
            "('Patient', 'p1', 'general-practitioner', 'Practitioner', 'd1'), "
            "('Patient', 'p1', 'general-practitioner', 'Practitioner', 'd1')"
        )
    db.close()


def test_migration_200_converts_the_old_layout(db_url: str) -> None:
    _old_layout(db_url)
    store = open_store(db_url)  # applies 200
    try:
        assert _count(store, "SELECT COUNT(*) FROM resource_history") == 1
        with store.read() as tx:
            assert tx.get("Patient", "p1")["gender"] == "female"
            history = tx.history("Patient", "p1", 10, 0)
            assert [(s.version, s.method) for s in history] == [(2, "PUT"), (1, "POST")]
            old = tx.vread("Patient", "p1", 1)
            assert old is not None and old.resource()["gender"] == "male"
            # migration 201 (SQLite: reference index rebuilt) kept the rows, one per reference
            assert [i for i, _ in tx.search(parse_search("Patient", [("gender", "female")]))] == [
                "p1"
            ]
            refs = tx.references_to("Practitioner", ["d1"], None, None)
            assert refs == [("Patient", "p1")]
        # a reference listed twice is one row (migration 201 on SQLite, 220 on both)
        assert _count(store, "SELECT COUNT(*) FROM idx_ref") == 1
        with store.write() as tx:
            tx.update("Patient", "p1", {"gender": "other"})
        with store.read() as tx:
            assert [s.version for s in tx.history("Patient", "p1", 10, 0)] == [3, 2, 1]
    finally:
        store.close()


def test_sqlite_stores_resources_deflated_and_reads_text_rows(store: Store) -> None:
    body = {"name": [{"family": "Ünal", "given": ["Zoë"]}], "gender": "female"}
    with store.write() as tx:
        pid = tx.create("Patient", body).res_id
    with store.read() as tx:
        raw = tx.conn.execute("SELECT content FROM resource WHERE res_id = ?", (pid,)).fetchone()
        stored = tx.read("Patient", pid)
    assert stored is not None and stored.resource()["name"] == body["name"]
    if store.db.dialect == "sqlite":
        assert isinstance(raw[0], bytes) and len(raw[0]) < len(stored.content or "")
        assert codec.unpack(raw[0]) == stored.content
    else:
        assert raw[0] == stored.content
    with pytest.raises(ValueError, match="unknown format"):
        codec.unpack(b"\x07abc")


def test_sqlite_synchronous_from_the_url(tmp_path: Path) -> None:
    for query, expected in (("", 1), ("?synchronous=full", 2)):  # NORMAL = 1, FULL = 2
        store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}{query}")
        try:
            with store.read() as tx:
                assert tx.conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        finally:
            store.close()
    with pytest.raises(BadRequest, match="synchronous"):
        open_database(f"sqlite:///{tmp_path / 'db.sqlite'}?synchronous=off")


def test_sqlite_looks_up_references_by_resource(tmp_path: Path) -> None:
    """The audit hook's question (Patients referenced by these resources) is answered from the
    rows of those resources, not by scanning every reference to a Patient (migrations 202,
    220: the source rows by their unique key, their reference rows by rid)."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with store.read() as tx:
        plan = tx.conn.execute(
            "EXPLAIN QUERY PLAN SELECT DISTINCT i.target_type, i.target_id FROM resource r "
            "JOIN idx_ref i ON i.rid = r.rid WHERE r.res_type = ? AND r.res_id IN (?, ?) "
            "AND +i.target_type = ?",
            ("Task", "t1", "t2", "Patient"),
        ).fetchall()
    store.close()
    details = " ".join(str(row[-1]) for row in plan)
    assert "ux_resource (res_type=? AND res_id=?)" in details, details
    assert "PRIMARY KEY (rid=?)" in details, details
    assert "ix_ref_target" not in details
