"""``validate_command`` prints readable issues and returns the exit code."""

from __future__ import annotations

import json
from pathlib import Path

from _conformance_examples import load_example
from rich.console import Console

from fhirmwl.cli_validate import validate_command
from fhirmwl.fhir.model import PROFILE_ISR


def _run(path: Path, profile: str | None = None) -> tuple[int, str]:
    console = Console(record=True, width=200, color_system=None)
    code = validate_command(path, profile, console=console)
    return code, console.export_text()


def test_valid_file_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text(json.dumps(load_example("Task-ImagingScheduledProcedureStep-Example")))
    code, text = _run(path)
    assert code == 0 and "0 error(s)" in text


def test_invalid_file_prints_profile_path_and_expectation(tmp_path: Path) -> None:
    isr = load_example("ServiceRequest-ImagingServiceRequest-Example")
    isr["identifier"] = isr["identifier"][1:]
    isr.pop("meta")
    path = tmp_path / "isr.json"
    path.write_text(json.dumps(isr))
    code, text = _run(path, PROFILE_ISR)
    assert code == 1
    assert "ERROR" in text and "imaging-service-request" in text
    assert "ServiceRequest.identifier" in text and "accessionNumber" in text
    assert "1 error(s)" in text


def test_unreadable_input_exits_two(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    assert _run(path)[0] == 2
    path.write_text("[]")
    assert _run(path)[0] == 2
    assert _run(tmp_path / "missing.json")[0] == 2
