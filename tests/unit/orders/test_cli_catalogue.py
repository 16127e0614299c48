"""``fhirmwl catalogue check`` on a good and a broken file."""

from __future__ import annotations

from pathlib import Path

from tests.integration.orders.conftest import CATALOGUE
from typer.testing import CliRunner

from fhirmwl.cli_orders import catalogue_app


def test_catalogue_check(tmp_path: Path) -> None:
    good = tmp_path / "c.toml"
    good.write_text(CATALOGUE)
    result = CliRunner().invoke(catalogue_app, ["check", str(good)])
    assert result.exit_code == 0 and "ok: 1 procedure(s)" in result.output
    bad = tmp_path / "b.json"
    bad.write_text('{"procedures": {"X": {"modality": "CT"}}}')
    result = CliRunner().invoke(catalogue_app, ["check", str(bad)])
    assert result.exit_code == 1
