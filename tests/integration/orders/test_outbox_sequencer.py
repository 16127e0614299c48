"""The outbox sequencer (``notify.outbox``): on PostgreSQL writers stage events unnumbered and
without a lock; numbers are given after commit, one sequencer at a time, so every consumer that
reads ``event_no > cursor`` sees every event exactly once, in an order consistent with commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fhirmwl.config import load_settings
from fhirmwl.notify import outbox
from fhirmwl.notify.topics import ORDER_CREATED, ORDER_UPDATED
from fhirmwl.services.container import Services
from fhirmwl.store import Tx
from fhirmwl.store.db import open_database
from fhirmwl.store.migrations import current_version
from fhirmwl.wiring import build_services
from tests.conftest import migrate_before


@pytest.fixture
def services(db_url: str) -> Iterator[Services]:
    s = build_services(load_settings(None, db=db_url))
    yield s
    s.close()


def _order(tx: Tx, note: str) -> str:
    body = {"status": "active", "intent": "order", "note": [{"text": note}]}
    return tx.create("ServiceRequest", body).res_id


def _update(tx: Tx, sr_id: str) -> None:
    current = tx.get("ServiceRequest", sr_id)
    tx.update("ServiceRequest", sr_id, dict(current, priority="urgent"))


class Consumer(threading.Thread):
    """Reads the outbox the way the dispatcher and the outbound worker do."""

    def __init__(self, services: Services, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.services, self.stop = services, stop
        self.seen: list[tuple[int, str, str]] = []  # (event_no, topic, order_id)
        self.error: BaseException | None = None

    def poll(self) -> None:
        outbox.sequence_pending(self.services.store)
        cursor = self.seen[-1][0] if self.seen else 0
        with self.services.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT event_no, topic, order_id FROM notify_event WHERE event_no > ? "
                "ORDER BY event_no",
                (cursor,),
            ).fetchall()
        self.seen += [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.poll()
                time.sleep(0.002)
            self.poll()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_concurrent_writers_every_consumer_sees_each_event_once_in_order(
    services: Services,
) -> None:
    writers, per_writer = 6, 12
    stop = threading.Event()
    consumers = [Consumer(services, stop) for _ in range(2)]
    for c in consumers:
        c.start()
    written: dict[int, list[str]] = {w: [] for w in range(writers)}
    failures: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                with services.store.write() as tx:
                    sr = _order(tx, f"{w}-{i}")
                written[w].append(sr)
                if i % 3 == 0:  # a second transaction on the same order
                    with services.store.write() as tx:
                        _update(tx, sr)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for c in consumers:
        c.join(timeout=30)
        assert c.error is None
    assert not failures
    expected = writers * per_writer + writers * ((per_writer + 2) // 3)
    with services.store.read() as tx:
        assert outbox.pending_count(tx) == 0  # every writer numbered its own events
    for c in consumers:
        numbers = [n for n, _, _ in c.seen]
        assert numbers == sorted(set(numbers)), "each event once, in number order"
        assert len(c.seen) == expected
        position = {(topic, order): k for k, (_, topic, order) in enumerate(c.seen)}
        assert len(position) == expected
        for orders in written.values():
            created = [position[(ORDER_CREATED, o)] for o in orders]
            assert created == sorted(created), "one writer's events keep its commit order"
            for o in orders[::3]:
                assert position[(ORDER_CREATED, o)] < position[(ORDER_UPDATED, o)]
    assert consumers[0].seen == consumers[1].seen


class _Gate:
    """WriteHook after the outbox: holds one chosen unit of work open just before COMMIT."""

    def __init__(self) -> None:
        self.note: str | None = None
        self.staged = threading.Event()
        self.release = threading.Event()

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        for rtype, rid in touched:
            stored = tx.read(rtype, rid)
            mine = rtype == "ServiceRequest" and stored and stored.content and self.note
            if mine and stored and stored.resource().get("note") == [{"text": self.note}]:
                self.staged.set()
                assert self.release.wait(30)


@pytest.mark.postgres
def test_late_commit_with_lower_staging_id_is_numbered_after_and_seen(pg_url: str) -> None:
    services = build_services(load_settings(None, db=pg_url))
    gate = _Gate()
    services.store.add_hook(gate)  # after the outbox hook: its event is staged already
    try:
        consumer = Consumer(services, threading.Event())
        gate.note = "late"
        late: list[str] = []

        def slow() -> None:
            with services.store.write() as tx:
                late.append(_order(tx, "late"))

        t = threading.Thread(target=slow)
        t.start()
        assert gate.staged.wait(30)
        with services.store.read() as tx:
            late_staging = tx.conn.execute(
                "SELECT MAX(staging_id) FROM notify_event_pending"
            ).fetchone()[0]
        assert late_staging is None  # not committed: invisible to everyone else
        with services.store.write() as tx:  # a later writer commits first
            early = _order(tx, "early")
        consumer.poll()  # the consumer's cursor passes the early event's number
        assert [o for _, _, o in consumer.seen] == [early]
        gate.release.set()
        t.join(timeout=30)
        consumer.poll()
        assert [o for _, _, o in consumer.seen] == [early, late[0]]
        numbers = [n for n, _, _ in consumer.seen]
        assert numbers[0] < numbers[1]
        with services.store.read() as tx:
            # the late writer drew the lower staging id (it staged first) and still got the
            # higher number: numbers are given at commit, not at staging
            row = tx.conn.execute("SELECT COUNT(*) FROM notify_event_pending").fetchone()
            assert row[0] == 0
    finally:
        gate.release.set()
        services.close()


@pytest.mark.postgres
def test_events_left_pending_by_a_failed_sequencer_are_numbered_by_consumers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = build_services(load_settings(None, db=pg_url))
    try:

        def broken(store: Any) -> int:
            raise RuntimeError("connection lost after commit")

        monkeypatch.setattr(outbox, "sequence", broken)
        with services.store.write() as tx:  # the write itself succeeds: it committed
            sr = _order(tx, "orphan")
        monkeypatch.undo()
        with services.store.read() as tx:
            assert outbox.pending_count(tx) == 1
            assert tx.conn.execute("SELECT COUNT(*) FROM notify_event").fetchone()[0] == 0
        assert outbox.sequence_pending(services.store) == 1
        assert outbox.sequence_pending(services.store) == 0
        with services.store.read() as tx:
            rows = tx.conn.execute("SELECT topic, order_id FROM notify_event").fetchall()
        assert [tuple(r) for r in rows] == [(ORDER_CREATED, sr)]
    finally:
        services.close()


def test_migration_230_converts_an_existing_database(db_url: str) -> None:
    """A database migrated before 230 (events in ``notify_event``) gets the staging table on
    PostgreSQL; old events keep their numbers and new ones follow them, on both backends."""
    # every feature registers its migrations (a throwaway store: nothing applied to db_url)
    build_services(load_settings(None, db="sqlite:///:memory:")).close()
    db = open_database(db_url)
    migrate_before(db, 230)
    with db.transaction(write=True) as conn:
        if db.dialect == "postgresql":
            staging = conn.execute("SELECT to_regclass('notify_event_pending')").fetchone()
            assert staging[0] is None  # the database as it was before 230
        conn.execute(
            "INSERT INTO notify_event (created, topic, order_id, focus_type, focus_id, "
            "focus_version, context) VALUES ('2025-01-01T00:00:00Z', 'order-created', 'old', "
            "'ServiceRequest', 'old', 0, '{}')"
        )
    db.close()
    services = build_services(load_settings(None, db=db_url))  # applies 230
    try:
        assert current_version(services.store.db) >= 230
        with services.store.write() as tx:
            sr = _order(tx, "new")
        with services.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT event_no, order_id FROM notify_event ORDER BY event_no"
            ).fetchall()
            assert outbox.pending_count(tx) == 0
        assert [r[1] for r in rows] == ["old", sr]
    finally:
        services.close()


@pytest.mark.postgres
def test_dispatcher_cycle_numbers_what_a_killed_writer_left_pending(pg_url: str) -> None:
    """A writer killed between its commit and its sequencer leaves staged events; the
    dispatcher's next cycle (wake-up or 0.5 s poll) numbers them before it reads."""
    from fhirmwl.notify.dispatcher import Dispatcher

    services = build_services(load_settings(None, db=pg_url))
    dispatcher = Dispatcher(services.store, services.notify_hook, "http://127.0.0.1:1/fhir")
    try:
        with services.store.write() as tx:
            tx.conn.execute(
                "INSERT INTO notify_event_pending (created, topic, order_id, focus_type, "
                "focus_id, focus_version, context) VALUES "
                "('2025-01-01T00:00:00Z', ?, 'left', 'ServiceRequest', 'left', 0, '{}')",
                (ORDER_CREATED,),
            )
        with services.store.read() as tx:
            assert outbox.pending_count(tx) == 1
        dispatcher.tick()
        with services.store.read() as tx:
            assert outbox.pending_count(tx) == 0
            rows = tx.conn.execute("SELECT order_id FROM notify_event").fetchall()
        assert [r[0] for r in rows] == ["left"]
    finally:
        dispatcher.pool.shutdown(wait=True)
        dispatcher.client.close()
        services.close()
