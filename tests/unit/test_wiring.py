"""The composition root: one build order, migrations once, and no service importing a door."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhirmwl import wiring
from fhirmwl.config import load_settings
from fhirmwl.store import migrations

SRC = Path(__file__).resolve().parents[2] / "src" / "fhirmwl"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(str(node.args[0].value))
    return out


@pytest.mark.parametrize("path", sorted((SRC / "services").rglob("*.py")), ids=str)
def test_services_never_import_the_api_or_the_wiring(path: Path) -> None:
    banned = ("fhirmwl.api", "fhirmwl.plugins", "fhirmwl.wiring", "fhirmwl.runtime")
    found = sorted(m for m in _imports(path) if m.startswith(banned))
    assert not found, f"{path.relative_to(SRC)} imports {found}"


def test_migrations_run_once_after_every_feature_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[set[int]] = []
    real = migrations.migrate

    def counting(db: Any) -> list[int]:
        calls.append({m.version for m in migrations.MIGRATIONS})
        return real(db)

    monkeypatch.setattr(migrations, "migrate", counting)
    monkeypatch.setattr(wiring, "migrate", counting)
    services = wiring.build_services(load_settings(None, db=f"sqlite:///{tmp_path / 'w.db'}"))
    try:
        assert len(calls) == 1  # features register migrations; the root runs them once
        assert migrations.current_version(services.store.db) == max(calls[0])
        with services.store.read() as tx:
            applied = {r[0] for r in tx.conn.execute("SELECT version FROM schema_migrations")}
        assert applied == calls[0]
    finally:
        services.close()


def test_features_fill_typed_fields_and_doors_start_with_http(tmp_path: Path) -> None:
    services = wiring.build_services(load_settings(None, db=f"sqlite:///{tmp_path / 'w.db'}"))
    try:
        assert services.worklist() is services.worklist_source
        assert services.orders() is services.order_context
        assert services.ingest_env is not None and services.notify_hook is not None
        assert "StructureDefinition" in services.readonly_types
        assert "SubscriptionTopic" in services.readonly_types
        assert services.supported_profiles["ServiceRequest"]
        names = [name for name, _ in wiring.doors(services)]
        assert names[0] == "http" and {"mllp", "dicom", "notify"} <= set(names)
        assert ("type", "Task", "mwl-query") in services.operations
        assert ("system", None, "create-order") in services.operations
    finally:
        services.close()


def test_migrate_command_creates_every_feature_table(tmp_path: Path) -> None:
    """``fhirmwl migrate --db URL`` (README) reaches the schema ``serve`` runs on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRMWL_")}
    cmd = [sys.executable, "-m", "fhirmwl.cli", "migrate", "--db", f"sqlite:///{tmp_path}/m.db"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    services = wiring.build_services(load_settings(None, db=f"sqlite:///{tmp_path}/s.db"))
    try:
        version = migrations.current_version(services.store.db)
    finally:
        services.close()
    assert first.strip().endswith(f"schema version {version}")
    assert again.strip() == f"applied nothing; schema version {version}"
