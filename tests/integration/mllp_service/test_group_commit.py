"""Group commit on SQLite (``services.ingest_v2.group``): messages of concurrent connections
share one transaction, each is ACKed only after that commit, a failing message rolls back alone,
every message keeps its own unit-of-work effects (log row, worklist row, audit event), and a
kill -9 of ``fhirmwl serve`` while 4 connections send loses no acknowledged message."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fhirmwl.config import load_settings
from fhirmwl.errors import Unprocessable
from fhirmwl.mllp import send_messages
from fhirmwl.mllp.client import MLLPError
from fhirmwl.services.ingest_v2.group import GroupCommit
from fhirmwl.store import Tx
from fhirmwl.store.codec import unpack
from fhirmwl.wiring import build_services
from tests.conftest import serve_with_mllp
from tests.integration.mllp_service.conftest import start_runtime
from tests.integration.mllp_service.messages import msa, orm


def _patient(name: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": name}]}


def test_concurrent_work_shares_one_commit_and_a_failure_rolls_back_alone(
    tmp_path: Path,
) -> None:
    services = build_services(load_settings(None, db=f"sqlite:///{tmp_path / 'g.db'}"))
    group = GroupCommit(services.store)
    queued, started = threading.Event(), threading.Event()
    committed: list[str] = []

    def first(tx: Tx) -> str:
        started.set()
        queued.wait(30)  # hold the write lock until the other five are queued behind it
        return tx.create("Patient", _patient("First")).res_id

    def make(k: int) -> Any:
        def work(tx: Tx) -> str:
            if k == 3:
                tx.create("Patient", _patient("Failing"))
                raise Unprocessable("message 3 is refused")
            stored = tx.create("Patient", _patient(f"Other{k}"))
            tx.after_commit.append(lambda: committed.append(stored.res_id))
            return stored.res_id

        return work

    try:
        with ThreadPoolExecutor(6) as pool:
            lead = pool.submit(group.run, first)
            assert started.wait(30)  # the first call leads and is inside its transaction
            others = [pool.submit(group.run, make(k)) for k in range(1, 6)]
            while len(group._queue) < 5:
                time.sleep(0.01)
            queued.set()
            first_id = lead.result(30)
            results: list[Any] = []
            for future in others:
                try:
                    results.append(future.result(30))
                except Unprocessable as exc:
                    results.append(exc)
        assert group.messages == 6 and group.groups == 2  # the five waiting ones: one commit
        assert isinstance(results[2], Unprocessable)
        ids = [first_id, *(r for r in results if isinstance(r, str))]
        assert len(ids) == 5 and sorted(committed) == sorted(ids[1:])
        with services.store.read() as tx:
            names = [tx.get("Patient", i)["name"][0]["family"] for i in ids]
            count = tx.conn.execute(
                "SELECT COUNT(*) FROM resource WHERE res_type = 'Patient'"
            ).fetchone()[0]
        assert names == ["First", "Other1", "Other2", "Other4", "Other5"]
        assert count == 5  # the refused message left nothing
    finally:
        services.close()


def test_eight_connections_every_message_has_its_own_effects(tmp_path: Path) -> None:
    runtime = start_runtime(f"sqlite:///{tmp_path / 'c.db'}")
    try:

        def sender(k: int) -> list[bytes]:
            msgs = [orm("NW", f"G{k}N{j}", f"G{k}N{j}", pid=f"GP{k}") for j in range(15)]
            stale = orm("XO", f"G{k}N0", f"G{k}X", msh7="20250101110000", pid=f"GP{k}")
            msgs.append(stale)  # older than the order's last change: AE, refused alone
            return send_messages("127.0.0.1", runtime.settings.mllp_port, msgs, timeout=120)

        with ThreadPoolExecutor(8) as pool:
            acks = list(pool.map(sender, range(8)))
        assert all(msa(a)[0] == "AA" for per in acks for a in per[:15])
        assert all(msa(per[15])[0] == "AE" for per in acks)  # refused alone, group unaffected
        env = runtime.services.ingest_env
        assert env.group is not None and env.group.messages >= 8 * 15
        with runtime.services.store.read() as tx:

            def count(sql: str) -> int:
                return int(tx.conn.execute(sql).fetchone()[0])

            assert count("SELECT COUNT(*) FROM resource WHERE res_type = 'Task'") == 120
            assert count("SELECT COUNT(*) FROM worklist") == 120
            applied = tx.conn.execute(
                "SELECT control_id, touched FROM v2_message_log WHERE status = 'applied'"
            ).fetchall()
            audited = [
                c
                for (c,) in tx.conn.execute(
                    "SELECT content FROM audit_event WHERE category = '110109' AND outcome = '0'"
                ).fetchall()
            ]
        assert sorted(c for c, _ in applied) == sorted(
            f"G{k}N{j}" for k in range(8) for j in range(15)
        )
        assert all("Task/" in str(t) for _, t in applied)  # each row names its own resources
        assert len(audited) == 120
        resources = runtime.services.resources
        with runtime.services.store.read() as tx:  # each message's search index rows are there
            for k in range(8):
                for j in (0, 14):
                    found = resources.find(tx, "ServiceRequest", f"identifier=G{k}N{j}")
                    assert len(found) == 1, (k, j, found)
    finally:
        runtime.stop()


def test_kill9_with_four_connections_loses_no_acked_message(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    proc, _, mllp_port = serve_with_mllp(db)
    acked: list[str] = []
    lock = threading.Lock()
    try:

        def sender(k: int) -> None:
            try:
                for n in range(2000):
                    cid = f"K{k}M{n}"
                    ack = send_messages("127.0.0.1", mllp_port, [orm("NW", cid, cid, pid=cid)])
                    if b"MSA|AA" in ack[0]:
                        with lock:
                            acked.append(cid)
                            if len(acked) == 40:  # all four are sending: kill mid-group
                                proc.send_signal(signal.SIGKILL)
            except (OSError, MLLPError):
                pass  # the broker died mid-stream

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert len(acked) >= 40
    services = build_services(load_settings(None, db=db, audit=False))
    try:
        with services.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT control_id FROM v2_message_log WHERE status = 'applied'"
            ).fetchall()
            placers = {
                m.group(1)
                for (c,) in tx.conn.execute(
                    "SELECT content FROM resource WHERE res_type = 'ServiceRequest'"
                ).fetchall()
                if (m := re.search(r'"value":"(K\d+M\d+)"', unpack(c) or ""))
            }
    finally:
        services.close()
    stored = {r[0] for r in rows}
    assert set(acked) <= stored, sorted(set(acked) - stored)
    assert set(acked) <= placers
