"""``fhirmwl purge``, ``backup`` and ``restore``: the operations commands (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.config import load_settings
from fhirmwl.errors import FhirMwlError


def purge(
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    dry_run: bool = typer.Option(False, "--dry-run", help="count what would go; remove nothing"),
    history_days: int | None = typer.Option(None, help="retention_history_days"),
    v2_log_days: int | None = typer.Option(None, help="retention_v2_log_days"),
    outbox_days: int | None = typer.Option(None, help="retention_outbox_days"),
    orders_days: int | None = typer.Option(None, help="retention_orders_days"),
    audit_days: int | None = typer.Option(None, help="retention_audit_days"),
) -> None:
    """Remove what is older than the retention settings (0 days keeps forever)."""
    from fhirmwl.ops.retention import RetentionPolicy, purge
    from fhirmwl.wiring import build_services

    settings = load_settings(
        config,
        db=db,
        retention_history_days=history_days,
        retention_v2_log_days=v2_log_days,
        retention_outbox_days=outbox_days,
        retention_orders_days=orders_days,
        retention_audit_days=audit_days,
    )
    policy = RetentionPolicy.from_settings(settings)
    if not policy.active:
        typer.echo("no retention configured (every retention_*_days is 0): nothing to do")
        return
    services = build_services(settings)
    try:
        counts = purge(services.store, policy, dry_run=dry_run)
    finally:
        services.close()
    verb = "would remove" if dry_run else "removed"
    for name, count in counts.items():
        typer.echo(f"{name}: {verb} {count}")


def backup(
    out: Path = typer.Option(..., "--out", help="backup file to write"),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a consistent copy of the store (SQLite); print the pg_dump command (PostgreSQL)."""
    from fhirmwl.ops.backup import backup as run

    try:
        result = run(load_settings(config, db=db).db, out, force=force)
    except FhirMwlError as exc:
        typer.echo(f"backup: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.message)


def restore(
    file: Path = typer.Argument(..., help="a file written by fhirmwl backup"),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    force: bool = typer.Option(False, "--force", help="replace an existing database file"),
) -> None:
    """Put a backup in place (broker stopped), then apply any newer migration."""
    from fhirmwl.ops.backup import restore as run
    from fhirmwl.wiring import build_services

    settings = load_settings(config, db=db)
    try:
        result = run(file, settings.db, force=force)
    except FhirMwlError as exc:
        typer.echo(f"restore: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.message)
    if result.path is not None:
        build_services(settings).close()  # applies migrations newer than the backup
        typer.echo("schema upgraded to the running version where needed")


def register(app: typer.Typer) -> None:
    app.command()(purge)
    app.command()(backup)
    app.command()(restore)
