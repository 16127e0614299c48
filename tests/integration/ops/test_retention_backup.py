"""Retention (``fhirmwl purge``) on a store with known ages, and backup → restore → same worklist.

Ages are made known by moving the stored timestamps of everything written in the test back to
2020 with SQL, so that the real clock, the CLI and the background worker run unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from fhirmwl.cli import app
from fhirmwl.config import load_settings
from fhirmwl.mllp import send_messages
from fhirmwl.wiring import build_services
from tests.conftest import running_broker
from tests.integration.dicom.mwl_scu import associate, find
from tests.integration.mllp_service.messages import orm

OLD = "2020-01-01T00:00:00.000Z"


def _age_everything(db_url: str) -> None:
    services = build_services(load_settings(None, db=db_url))
    try:
        with services.store.write() as tx:
            tx.conn.execute("UPDATE resource SET lu = ?", (OLD,))
            tx.conn.execute("UPDATE resource_history SET lu = ?", (OLD,))
            tx.conn.execute("UPDATE v2_message_log SET received_at = ?", (OLD,))
            tx.conn.execute("UPDATE notify_event SET created = ?", (OLD,))
    finally:
        services.close()


def _count(db_url: str, sql: str) -> int:
    services = build_services(load_settings(None, db=db_url))
    try:
        with services.store.read() as tx:
            return int(tx.conn.execute(sql).fetchone()[0])
    finally:
        services.close()


def _purge(db_url: str, *extra: str) -> dict[str, int]:
    args = ["purge", "--db", db_url, "--history-days", "30", "--v2-log-days", "30"]
    args += ["--outbox-days", "30", "--orders-days", "30", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    counts = {}
    for line in result.output.splitlines():
        name, _, rest = line.partition(":")
        counts[name.strip()] = int(rest.split()[-1])
    return counts


def test_purge_removes_only_what_is_old_and_finished(db_url: str) -> None:
    with running_broker(db_url, mllp=True) as rt:
        port = rt.settings.mllp_port
        messages = [
            orm("NW", "KEEP1", "R1", msh7="20250101120000"),
            orm("NW", "GONE1", "R2", msh7="20250101120000", pid="PAT2"),
            orm("XO", "KEEP1", "R3", msh7="20250101130000", desc="CT Abdomen changed"),
            orm("CA", "GONE1", "R4", msh7="20250101140000", orc5="CA", pid="PAT2"),
        ]
        acks = send_messages("127.0.0.1", port, messages, timeout=30)
        assert all(b"MSA|AA" in a for a in acks), acks
    _age_everything(db_url)
    history_before = _count(db_url, "SELECT COUNT(*) FROM resource_history")
    worklist_before = _count(db_url, "SELECT COUNT(*) FROM worklist")
    assert worklist_before == 1  # the cancelled order is not on the worklist

    planned = _purge(db_url, "--dry-run")
    assert planned["orders"] == 1 and planned["v2_log"] == 4 and planned["history"] > 0
    assert planned["outbox"] >= 1
    assert _count(db_url, "SELECT COUNT(*) FROM resource_history") == history_before

    clocks_before = _count(db_url, "SELECT COUNT(*) FROM order_control_state")
    done = _purge(db_url)
    assert done["orders"] == 1 and done["v2_log"] == 4 and done["outbox"] == planned["outbox"]
    assert _purge(db_url, "--dry-run") == {"orders": 0, "history": 0, "v2_log": 0, "outbox": 0}
    # Every live resource keeps its current version; the active order is still on the worklist.
    missing = _count(db_url, "SELECT COUNT(*) FROM resource WHERE deleted = 0 AND content IS NULL")
    assert missing == 0 and _count(db_url, "SELECT COUNT(*) FROM resource WHERE deleted = 0") > 0
    assert _count(db_url, "SELECT COUNT(*) FROM worklist") == 1
    # the purged order's v2 message clock went with it, the kept order's stays
    assert _count(db_url, "SELECT COUNT(*) FROM order_control_state") == clocks_before - 1
    gone = _count(
        db_url,
        "SELECT COUNT(*) FROM resource WHERE res_type = 'ServiceRequest' AND deleted = 1",
    )
    assert gone >= 2  # the cancelled ImagingServiceRequest and its requested procedure


def test_purge_without_settings_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["purge", "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0 and "nothing to do" in result.output


def _worklist_answer(port: int) -> list[tuple[str, str]]:
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    assoc = associate(port)
    try:
        items, final = find(assoc, query)
    finally:
        assoc.release()
    assert final.Status == 0
    return sorted((str(i.AccessionNumber), str(i.PatientName)) for i in items)


def test_backup_restore_serves_the_same_worklist(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'live.db'}"
    with running_broker(db, dicom=True, mllp=True) as rt:
        acks = send_messages(
            "127.0.0.1",
            rt.settings.mllp_port,
            [orm("NW", f"BK{n}", f"B{n}", pid=f"P{n}") for n in range(3)],
            timeout=30,
        )
        assert all(b"MSA|AA" in a for a in acks)
        before = _worklist_answer(rt.settings.dicom_port)
        # The backup is taken while the broker is serving (online backup API).
        backup_file = tmp_path / "backups" / "fhirmwl.backup"
        out = CliRunner().invoke(app, ["backup", "--db", db, "--out", str(backup_file)])
        assert out.exit_code == 0, out.output
    assert len(before) == 3
    again = CliRunner().invoke(app, ["backup", "--db", db, "--out", str(backup_file)])
    assert again.exit_code == 1 and "--force" in again.output

    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    result = CliRunner().invoke(app, ["restore", str(backup_file), "--db", restored])
    assert result.exit_code == 0, result.output
    with running_broker(restored, dicom=True) as rt2:
        assert _worklist_answer(rt2.settings.dicom_port) == before
    refused = CliRunner().invoke(app, ["restore", str(backup_file), "--db", restored])
    assert refused.exit_code == 1 and "exists" in refused.output


@pytest.mark.postgres
def test_backup_on_postgres_prints_pg_dump(pg_url: str) -> None:
    build_services(load_settings(None, db=pg_url)).close()
    result = CliRunner().invoke(app, ["backup", "--db", pg_url, "--out", "/tmp/x.dump"])
    assert result.exit_code == 0, result.output
    schema = pg_url.rsplit("schema=", 1)[1]
    assert "pg_dump --format=custom" in result.output and f"--schema={schema}" in result.output
    assert "pg_restore" in result.output


def test_outbound_hl7_waiting_is_kept_and_measured(tmp_path: Path) -> None:
    """A destination that is down: its pending message survives every purge and shows in
    /metrics; the notification events it has not consumed are not purged either."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import free_port

    db = f"sqlite:///{tmp_path / 'o.db'}"
    dest = [{"name": "pacs", "host": "127.0.0.1", "port": free_port()}]
    with running_broker(db, mllp=True, hl7_destinations=dest) as rt:
        acks = send_messages("127.0.0.1", rt.settings.mllp_port, [orm("NW", "OUT1", "OUT1")])
        assert b"MSA|AA" in acks[0]
        base = f"http://127.0.0.1:{rt.settings.http_port}"
        pending = 0.0
        for _ in range(100):
            text = httpx.get(f"{base}/metrics").text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "fhirmwl_hl7_out_pending_messages":
                        pending = sample.value
            if pending:
                break
            time.sleep(0.1)
        assert pending == 1
    _age_everything(db)
    services = build_services(load_settings(None, db=db))
    try:
        with services.store.write() as tx:
            tx.conn.execute("UPDATE hl7_out_log SET created = ?", (OLD,))
    finally:
        services.close()
    done = _purge(db)
    assert done["v2_log"] == 1  # the inbound row; the pending outbound one stays
    assert _count(db, "SELECT COUNT(*) FROM hl7_out_log WHERE status = 'pending'") == 1
