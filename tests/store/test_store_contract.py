"""One contract suite, run on SQLite and on the local PostgreSQL (``db_url`` is parametrised)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fhirmwl.errors import DuplicateIdentifier, PreconditionFailed, Unprocessable
from fhirmwl.fhir.search import parse_search
from fhirmwl.services.bundles import BundleProcessor
from fhirmwl.services.resources import ResourceService
from fhirmwl.store import Store, open_store
from fhirmwl.store.migrations import MIGRATIONS, current_version
from tests.conftest import ig_examples

ACSN_TYPE = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def patient(family: str, mrn: str, birth: str = "1970-05-06", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family, "given": ["Ann"]}],
        "birthDate": birth,
        **extra,
    }


def ids(store: Store, rtype: str, *params: tuple[str, str]) -> set[str]:
    with store.read() as tx:
        return {i for i, _ in tx.search(parse_search(rtype, list(params), strict=True))}


def test_schema_is_migrated_once(store: Store) -> None:
    assert current_version(store.db) == max(m.version for m in MIGRATIONS)
    from fhirmwl.store.migrations import migrate

    assert migrate(store.db) == []


def test_create_read_update_history_delete(store: Store) -> None:
    with store.write() as tx:
        created = tx.create("Patient", patient("Smith", "1"))
    assert created.version == 1
    with store.write() as tx:
        body = created.resource() | {"gender": "female"}
        updated, was_created = tx.update("Patient", created.res_id, body, if_match=1)
    assert (updated.version, was_created) == (2, False)
    assert updated.resource()["meta"]["versionId"] == "2"
    with store.write() as tx:
        tx.delete("Patient", created.res_id)
    with store.read() as tx:
        current = tx.read("Patient", created.res_id)
        assert current is not None and current.deleted and current.version == 3
        v1 = tx.vread("Patient", created.res_id, 1)
        assert v1 is not None and "gender" not in v1.resource()
        history = tx.history("Patient", created.res_id, 10, 0)
    assert [h.version for h in history] == [3, 2, 1]
    assert [h.method for h in history] == ["DELETE", "PUT", "POST"]
    assert ids(store, "Patient", ("family", "smith")) == set()


def test_if_match_mismatch_is_refused_and_nothing_written(store: Store) -> None:
    with store.write() as tx:
        created = tx.create("Patient", patient("Jones", "2"))
    with pytest.raises(PreconditionFailed), store.write() as tx:
        tx.update("Patient", created.res_id, created.resource(), if_match=7)
    with store.read() as tx:
        assert tx.read("Patient", created.res_id).version == 1  # type: ignore[union-attr]


def test_update_as_create_with_client_id(store: Store) -> None:
    with store.write() as tx:
        stored, created = tx.update("Patient", "client-id-1", patient("Lee", "3"))
    assert created and stored.res_id == "client-id-1"


def test_accession_number_is_unique_per_issuer(store: Store) -> None:
    def isr(value: str, system: str = "urn:acsn") -> dict[str, Any]:
        return {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p"},
            "identifier": [{"type": ACSN_TYPE, "system": system, "value": value}],
        }

    with store.write() as tx:
        tx.create("ServiceRequest", isr("A1"))
        tx.create("ServiceRequest", isr("A1", "urn:other-issuer"))
    with pytest.raises(DuplicateIdentifier), store.write() as tx:
        tx.create("ServiceRequest", isr("B1"))
        tx.create("ServiceRequest", isr("A1"))
    assert ids(store, "ServiceRequest", ("identifier", "B1")) == set()  # rolled back


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ((("identifier", "urn:mrn|10"),), {"a"}),
        ((("identifier", "urn:mrn|"),), {"a", "b", "c"}),
        ((("identifier", "10,12"),), {"a", "c"}),
        ((("identifier", "|10"),), set()),
        ((("identifier:not", "urn:mrn|10"),), {"b", "c"}),
        ((("family", "MÜL"),), {"b"}),
        ((("family:exact", "Müller"),), {"b"}),
        ((("family:exact", "müller"),), set()),
        ((("name:contains", "ll"),), {"b"}),
        ((("birthdate", "1970"),), {"a", "b"}),
        ((("birthdate", "1970-05"),), {"a"}),
        ((("birthdate", "ge1971-01-01"),), {"c"}),
        ((("birthdate", "lt1970-06-01"),), {"a"}),
        ((("birthdate", "sa1970-06-01"),), {"b", "c"}),
        ((("birthdate", "eb1970-06-01"),), {"a"}),
        ((("birthdate", "ne1970-05-06"),), {"b", "c"}),
        ((("birthdate", "ge1970"), ("birthdate", "le1970-12-31")), {"a", "b"}),
        ((("gender", "female"),), {"a", "c"}),
        ((("gender:missing", "true"),), {"b"}),
        ((("_id", "a,c"),), {"a", "c"}),
    ],
)
def test_search_parameter_types(
    store: Store, params: tuple[tuple[str, str], ...], expected: set[str]
) -> None:
    with store.write() as tx:
        tx.update("Patient", "a", patient("Smith", "10", "1970-05-06", gender="female"))
        tx.update("Patient", "b", patient("Müller", "11", "1970-08-01"))
        tx.update("Patient", "c", patient("Ng", "12", "1984-01-31", gender="female"))
    assert ids(store, "Patient", *params) == expected


def _load_example(store: Store) -> dict[str, Any]:
    processor = BundleProcessor(ResourceService(store))
    return processor.process(ig_examples(), "http://x/fhir", None)


def test_transaction_resolves_urns_and_conditional_create(store: Store) -> None:
    first = _load_example(store)
    assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 7
    # The same Patient again: If-None-Exist finds it, no duplicate.
    assert ids(store, "Patient", ("identifier", "http://goodhealth.org/mrn|PID12345"))
    task_ids = ids(store, "Task", ("patient.identifier", "PID12345"))
    with store.read() as tx:
        task = tx.get("Task", task_ids.pop())
    rp_ref = task["basedOn"][0]["reference"]
    assert rp_ref.startswith("ServiceRequest/") and "urn:uuid" not in json.dumps(task)


def test_transaction_is_all_or_nothing(store: Store) -> None:
    bundle = ig_examples()
    bundle["entry"][-1]["resource"]["status"] = 42  # invalid Task.status
    with pytest.raises(Unprocessable) as err:
        BundleProcessor(ResourceService(store)).process(bundle, "http://x/fhir", None)
    assert "entry[6]" in err.value.message
    assert ids(store, "Patient", ("identifier", "PID12345")) == set()


def test_chained_search_and_includes(store: Store) -> None:
    _load_example(store)
    acsn = ("based-on:ServiceRequest.based-on:ServiceRequest.identifier", "A12345")
    assert len(ids(store, "ServiceRequest", ("based-on:ServiceRequest.identifier", "A12345"))) == 1
    assert len(ids(store, "Task", ("patient.identifier", "PID12345"))) == 1
    assert len(ids(store, "Task", acsn)) == 1
    assert (
        ids(store, "Task", ("based-on:ServiceRequest.based-on:ServiceRequest.identifier", "nope"))
        == set()
    )
    from fhirmwl.services.search import search_bundle

    with store.read() as tx:
        bundle = search_bundle(
            tx,
            "Task",
            [
                ("patient.identifier", "PID12345"),
                ("_include", "Task:based-on"),
                ("_include:iterate", "ServiceRequest:based-on"),
                ("_include", "Task:patient"),
                ("_include", "Task:encounter"),
                ("_include", "Task:requested-performer-reference"),
                ("_revinclude:iterate", "ImagingStudy:based-on"),
            ],
            "http://x/fhir",
            True,
        )
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == [
        "Device",
        "Encounter",
        "ImagingStudy",
        "Patient",
        "ServiceRequest",
        "ServiceRequest",
        "Task",
    ]


def test_paging_and_sort(store: Store) -> None:
    with store.write() as tx:
        for n in range(7):
            tx.update("Patient", f"p{n}", patient(f"Fam{n}", str(100 + n), f"19{60 + n}-01-01"))
    with store.read() as tx:
        q = parse_search("Patient", [("_sort", "-birthdate"), ("_count", "3")])
        first = [i for i, _ in tx.search(q)]
        q.offset = 3
        second = [i for i, _ in tx.search(q)]
    assert first == ["p6", "p5", "p4"] and second == ["p3", "p2", "p1"]


def test_identical_update_creates_no_version(store: Store) -> None:
    with store.write() as tx:
        created = tx.create("Patient", patient("Same", "77"))
    with store.write() as tx:
        again, was_created = tx.update("Patient", created.res_id, created.resource())
        assert not tx.touched  # nothing written, so derived tables are not recomputed
    assert (again.version, was_created) == (1, False)
    with store.write() as tx:
        changed, _ = tx.update("Patient", created.res_id, created.resource() | {"active": True})
    assert changed.version == 2


def test_requested_period_compares_the_scheduled_start(store: Store) -> None:
    """Our ``requested-period`` parameter treats the SPS start as an instant: a day range
    (``ge…&lt…``, or the day itself) finds exactly the steps that start that day."""

    def task(start: str) -> dict[str, Any]:
        return {
            "resourceType": "Task",
            "status": "requested",
            "intent": "plan",
            "requestedPeriod": {"start": start},
        }

    with store.write() as tx:
        tx.update("Task", "t1", task("2024-01-01T23:30:00Z"))
        tx.update("Task", "t2", task("2024-01-02T08:00:00Z"))
        tx.update("Task", "t3", task("2024-01-02T17:45:00+01:00"))
        tx.update("Task", "t4", task("2024-01-03T00:00:00Z"))
    day = (("requested-period", "ge2024-01-02"), ("requested-period", "lt2024-01-03"))
    assert ids(store, "Task", *day) == {"t2", "t3"}
    assert ids(store, "Task", ("requested-period", "2024-01-02")) == {"t2", "t3"}
    assert ids(store, "Task", ("requested-period", "gt2024-01-02")) == {"t4"}
    assert ids(store, "Task", ("requested-period", "le2024-01-01")) == {"t1"}
    assert ids(store, "Task", ("requested-period", "ne2024-01-02")) == {"t1", "t4"}
