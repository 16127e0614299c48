"""Pure parts of the v2 intake service (Bundle completion, group split, settings) and the
`v2 log` / `v2 replay` commands against a SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.integration.mllp_service.messages import msa, orm
from typer.testing import CliRunner

from fhirmwl.cli_v2 import app
from fhirmwl.config import load_settings
from fhirmwl.mapping.v2_to_fhir import MappingContext, MissingValue, OrderMessage
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.services.ingest_v2 import ingest, log, mapping_context
from fhirmwl.services.ingest_v2.env import missing_value_policy
from fhirmwl.services.orders import Catalogue, OrderContext
from fhirmwl.services.orders.complete import default_start
from fhirmwl.services.orders.matching import group_entries
from fhirmwl.services.orders.steps import Finding, complete_step
from fhirmwl.wiring import build_services

NOW = datetime(2025, 1, 1, 10, 2, 30, tzinfo=UTC)


def _mapped(raw: bytes) -> OrderMessage:
    result = evaluate(raw, MappingContext())
    assert isinstance(result.mapped, OrderMessage)
    return result.mapped


def test_next_slot_rounds_up_to_the_boundary() -> None:
    assert default_start({}, NOW, 5) == datetime(2025, 1, 1, 10, 5, tzinfo=UTC)
    at_boundary = datetime(2025, 1, 1, 10, 5, tzinfo=UTC)
    assert default_start({}, at_boundary, 5) == datetime(2025, 1, 1, 10, 10, tzinfo=UTC)


def _step(raw: bytes, ctx: OrderContext) -> tuple[dict, list[Finding]]:  # type: ignore[type-arg]
    bundle = _mapped(raw).bundle
    (task,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    rps = [e["resource"] for e in bundle["entry"] if "basedOn" in e["resource"]]
    findings: list[Finding] = []
    complete_step(task, rps[0], ctx, findings, "urn:x")
    return task, findings


def test_step_completion_fills_plan_code_modality_and_start() -> None:
    ctx = OrderContext(Catalogue(), clock=lambda: NOW)
    raw = orm("NW", "U1", "U1").replace(b"||||CT\r", b"||||\r")  # no OBR-24 modality
    task, findings = _step(raw, ctx)
    assert task["intent"] == "plan"
    assert task["input"][0]["valueCodeableConcept"]["coding"][0]["code"] == "OT"
    assert task["requestedPeriod"]["start"]  # ORC-7.4 given: kept
    assert {"modality"} <= {t["code"] for t in task["meta"]["tag"]}
    assert [(f.about, f.hl7_code) for f in findings] == [("modality", "101")]


def test_table_0074_modality_is_replaced_with_a_warning() -> None:
    ctx = OrderContext(Catalogue(), clock=lambda: NOW)
    task, findings = _step(orm("NW", "U4", "U4").replace(b"||||CT\r", b"||||RAD\r"), ctx)
    assert task["input"][0]["valueCodeableConcept"]["coding"][0]["code"] == "OT"
    (finding,) = findings
    assert finding.hl7_code == "103" and "'RAD' is not a DICOM modality" in finding.text


def test_group_entries_follow_based_on() -> None:
    mapped = _mapped(orm("NW", "U2", "U2"))
    (group,) = mapped.groups
    kinds = sorted(
        e["resource"]["resourceType"] for e in group_entries(mapped.bundle, group.isr_full_url)
    )
    assert kinds == ["ImagingStudy", "ServiceRequest", "ServiceRequest", "Task"]


def test_settings_v2_section() -> None:
    settings = load_settings(None, timezone="Europe/Berlin")
    settings.extra["v2"] = {
        "missing_values": {"accession_number": "reject"},
        "issuers": {"RIS": "urn:x"},
    }
    ctx = mapping_context(settings)
    assert ctx.policy.accession_number is MissingValue.REJECT
    assert ctx.policy.sps_id is MissingValue.GENERATE
    assert ctx.systems.issuers == {"RIS": "urn:x"} and ctx.timezone == "Europe/Berlin"
    assert missing_value_policy("reject").study_instance_uid is MissingValue.REJECT


def test_log_and_replay_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    services = build_services(load_settings(None, db=db))
    try:
        assert msa(ingest(services, b"garbage"))[0] == "AR"
        assert msa(ingest(services, orm("NW", "U3", "U3")))[0] == "AA"
        with services.store.read() as tx:
            applied, rejected = log.recent(tx.conn, 2)
    finally:
        services.close()
    listed = CliRunner().invoke(app, ["log", "--db", db, "--status", "applied"])
    assert listed.exit_code == 0 and "U3" in listed.output and "ORM^O01" in listed.output
    assert "rejected" not in listed.output
    again = CliRunner().invoke(app, ["replay", str(applied.id), "--db", db])
    assert again.exit_code == 0 and "MSA|AA|U3" in again.output
    refused = CliRunner().invoke(app, ["replay", str(rejected.id), "--db", db])
    assert refused.exit_code == 1 and "MSA|AR" in refused.output
    statuses = CliRunner().invoke(app, ["log", "--db", db, "--limit", "1"])
    assert "rejected" in statuses.output  # the replay of the garbage was logged again
