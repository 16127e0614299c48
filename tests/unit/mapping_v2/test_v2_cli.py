"""`fhirmwl v2 to-fhir` prints the Bundle, or the refusing ACK with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fhirmwl.cli_v2 import app

GOLDEN = Path(__file__).parent / "golden"


def test_to_fhir_prints_transaction_bundle() -> None:
    result = CliRunner().invoke(app, ["to-fhir", str(GOLDEN / "omi_multi_ipc.hl7")])
    assert result.exit_code == 0
    bundle = json.loads(result.stdout)
    assert bundle["type"] == "transaction"
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} >= {"Task", "ImagingStudy"}


def test_to_fhir_summary_and_reject_policy(tmp_path: Path) -> None:
    raw = (GOLDEN / "orm_nw.hl7").read_bytes().replace(b"|ACC0001|", b"||")
    path = tmp_path / "no_accession.hl7"
    path.write_bytes(raw)
    ok = CliRunner().invoke(app, ["to-fhir", "--summary", str(path)])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["groups"][0]["generated"] == ["accession-number"]
    refused = CliRunner().invoke(app, ["to-fhir", "--reject-missing", str(path)])
    assert refused.exit_code == 1 and "MSA|AE|MSG0001" in refused.output
