"""Integer keys for the search index (issue 15, migration 220): index rows carry the resource's
``rid`` and the parameter's ``pid`` instead of (res_type, res_id, param) text. A database
written with the text-keyed layout (migrations 1-202) is converted on both backends and its
searches, reference lookups and unique identifiers keep working."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirmwl.errors import DuplicateIdentifier
from fhirmwl.fhir.search import parse_search
from fhirmwl.store import open_store
from fhirmwl.store.db import open_database
from fhirmwl.store.search_sql import REF_ALIASES
from tests.conftest import migrate_before

PATIENT = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}}
ORDER = {"resourceType": "ServiceRequest", "id": "s1", "meta": {"versionId": "1"}}


def _acsn(value: str) -> dict[str, Any]:
    acsn = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
    return {"type": {"coding": [acsn]}, "system": "urn:acsn", "value": value}


def _text_keyed_layout(db_url: str) -> None:
    """Migrations before 220, rows written the way the store wrote them then."""
    db = open_database(db_url)
    migrate_before(db, 220)
    patient: dict[str, Any] = {
        **PATIENT,
        "name": [{"family": "Ünal"}],
        "birthDate": "1970-05-01",
        "identifier": [{"system": "urn:mrn", "value": "M1"}],
    }
    order: dict[str, Any] = {
        **ORDER,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "identifier": [_acsn("A1")],
    }
    cols = "res_type, res_id, version, last_updated, lu, method, deleted, content"
    with db.transaction(write=True) as conn:
        for body in (patient, order):
            conn.execute(
                f"INSERT INTO resource ({cols}) VALUES (?, ?, 1, ?, ?, 'POST', 0, ?)",
                (
                    body["resourceType"],
                    body["id"],
                    "2025-01-01T00:00:00Z",
                    "2025-01-01T00:00:00.000000",
                    orjson.dumps(body).decode(),
                ),
            )
        conn.execute(
            "INSERT INTO idx_token (res_type, res_id, param, system, code) VALUES "
            "('Patient', 'p1', 'identifier', 'urn:mrn', 'M1'), "
            "('ServiceRequest', 's1', 'status', NULL, 'active'), "
            "('ServiceRequest', 's1', 'intent', NULL, 'order')"
        )
        conn.execute(
            "INSERT INTO idx_string (res_type, res_id, param, value, raw) VALUES "
            "('Patient', 'p1', 'family', 'unal', 'Ünal'), "
            "('Patient', 'p1', 'name', 'unal', 'Ünal')"
        )
        conn.execute(
            "INSERT INTO idx_date (res_type, res_id, param, lo, hi) VALUES ('Patient', 'p1', "
            "'birthdate', '1970-05-01T00:00:00.000000', '1970-05-01T23:59:59.999999')"
        )
        conn.execute(
            "INSERT INTO idx_ref (res_type, res_id, param, target_type, target_id) VALUES "
            "('ServiceRequest', 's1', 'subject', 'Patient', 'p1'), "
            "('ServiceRequest', 's1', 'patient', 'Patient', 'p1'), "
            # a reference to a resource not stored (yet)
            "('ServiceRequest', 's1', 'encounter', 'Encounter', 'e-later')"
        )
        conn.execute(
            "INSERT INTO unique_ident (kind, system, value, res_type, res_id) VALUES "
            "('ACSN', 'urn:acsn', 'A1', 'ServiceRequest', 's1')"
        )
    db.close()


def _ids(tx: Any, res_type: str, params: list[tuple[str, str]]) -> list[str]:
    return [i for i, _ in tx.search(parse_search(res_type, params))]


def test_migration_220_converts_the_text_keyed_index(db_url: str) -> None:
    _text_keyed_layout(db_url)
    store = open_store(db_url)  # applies 220
    try:
        with store.read() as tx:
            columns = tx.conn.execute("SELECT * FROM idx_ref").description
            assert [c[0] for c in columns][:3] == ["rid", "pid", "n"]
            assert _ids(tx, "Patient", [("identifier", "urn:mrn|M1")]) == ["p1"]
            assert _ids(tx, "Patient", [("family", "unal")]) == ["p1"]
            assert _ids(tx, "Patient", [("birthdate", "1970-05")]) == ["p1"]
            assert _ids(tx, "ServiceRequest", [("status", "active")]) == ["s1"]
            assert _ids(tx, "ServiceRequest", [("subject", "Patient/p1")]) == ["s1"]
            # ``patient`` is read from the ``subject`` rows; its own rows were dropped
            assert _ids(tx, "ServiceRequest", [("patient", "p1")]) == ["s1"]
            assert _ids(tx, "ServiceRequest", [("patient:missing", "false")]) == ["s1"]
            assert tx.conn.execute("SELECT COUNT(*) FROM idx_ref").fetchone() == (2,)
            assert tx.references_from("ServiceRequest", ["s1"], "patient", None) == [
                ("Patient", "p1")
            ]
            assert tx.references_to("Patient", ["p1"], "ServiceRequest", "patient") == [
                ("ServiceRequest", "s1")
            ]
            assert tx.references_to("Patient", ["p1"], None, "patient") == [
                ("ServiceRequest", "s1")
            ]
            assert _ids(tx, "ServiceRequest", [("subject:Patient.family", "ünal")]) == ["s1"]
            assert _ids(tx, "ServiceRequest", [("encounter:missing", "false")]) == ["s1"]
            assert tx.references_to("Patient", ["p1"], None, None) == [("ServiceRequest", "s1")]
            assert tx.references_to("Patient", ["p1"], None, "subject") == [
                ("ServiceRequest", "s1")
            ]
            assert tx.references_from("ServiceRequest", ["s1"], "encounter", None) == [
                ("Encounter", "e-later")
            ]
            assert tx.find_unique("ACSN", "urn:acsn", "A1") == ("ServiceRequest", "s1")
        with pytest.raises(DuplicateIdentifier, match="ServiceRequest/s1"), store.write() as tx:
            tx.create("ServiceRequest", {"status": "active", "identifier": [_acsn("A1")]})
        with store.write() as tx:
            # the referenced Encounter arrives later: the reverse lookup and chain find it
            tx.update("Encounter", "e-later", {"status": "planned", "class": {"code": "AMB"}})
            tx.update("Patient", "p1", {"name": [{"family": "Other"}]})
            new = tx.create("Patient", {"identifier": [{"system": "urn:mrn", "value": "M2"}]})
        with store.read() as tx:
            assert tx.references_to("Encounter", ["e-later"], "ServiceRequest", "encounter") == [
                ("ServiceRequest", "s1")
            ]
            assert _ids(tx, "ServiceRequest", [("encounter:Encounter.status", "planned")]) == ["s1"]
            assert _ids(tx, "Patient", [("family", "unal")]) == []
            assert _ids(tx, "Patient", [("family", "other")]) == ["p1"]
            assert _ids(tx, "Patient", [("identifier", "urn:mrn|M2")]) == [new.res_id]
            rids = dict(tx.conn.execute("SELECT res_id, rid FROM resource").fetchall())
            assert rids[new.res_id] > rids["s1"] > rids["p1"]  # old rows kept their order
            # the updated Patient's old index rows are gone: one family row, no identifier
            family = tx.pid("Patient", "family")
            assert tx.conn.execute(
                "SELECT COUNT(*) FROM idx_string WHERE rid = ? AND pid = ?", (rids["p1"], family)
            ).fetchone() == (1,)
    finally:
        store.close()


def test_every_registered_parameter_is_numbered_before_the_first_write(db_url: str) -> None:
    store = open_store(db_url)
    try:
        with store.write() as tx:
            tx.create("Patient", {"gender": "other"})
        assert ("Task", "owner") in store.pids and ("Patient", "gender") in store.pids
        assert len(set(store.pids.values())) == len(store.pids)
        with store.read() as tx:
            assert _ids(tx, "Patient", [("gender", "other")]) != []
            assert _ids(tx, "Patient", [("gender", "male")]) == []
    finally:
        store.close()


def test_reference_aliases_are_the_subject_rows_of_a_patient(db_url: str) -> None:
    """``patient`` stores no rows of its own: the ``subject`` rows with a Patient target answer
    it, and a ``subject`` naming something else does not (migration 220 drops the rows of
    exactly these aliases)."""
    assert {k: v for k, v in REF_ALIASES.items()} == {
        (t, "patient"): ("subject", "Patient")
        for t in (
            "Encounter",
            "ImagingStudy",
            "Observation",
            "Flag",
            "Procedure",
            "ServiceRequest",
            "Task",
        )
    }
    store = open_store(db_url)
    try:
        with store.write() as tx:
            tx.update("Patient", "pa", {"gender": "other"})
            on_patient = tx.create(
                "Observation", {"status": "final", "subject": {"reference": "Patient/pa"}}
            ).res_id
            on_group = tx.create(
                "Observation", {"status": "final", "subject": {"reference": "Group/pa"}}
            ).res_id
        with store.read() as tx:
            rows = tx.conn.execute("SELECT COUNT(*) FROM idx_ref").fetchone()
            assert rows == (2,)  # one subject row each, no patient rows
            assert _ids(tx, "Observation", [("patient", "pa")]) == [on_patient]
            assert _ids(tx, "Observation", [("patient", "Patient/pa")]) == [on_patient]
            assert sorted(_ids(tx, "Observation", [("subject", "pa")])) == sorted(
                [on_patient, on_group]
            )
            assert _ids(tx, "Observation", [("patient:missing", "true")]) == [on_group]
            assert _ids(tx, "Observation", [("patient.gender", "other")]) == [on_patient]
            assert tx.references_to("Patient", ["pa"], "Observation", "patient") == [
                ("Observation", on_patient)
            ]
            assert tx.references_to("Group", ["pa"], None, "patient") == []
            assert tx.references_from("Observation", [on_group], "patient", None) == []
    finally:
        store.close()
