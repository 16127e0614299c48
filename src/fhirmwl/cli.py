"""The ``fhirmwl`` command line: serve, migrate, and the feature sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.config import load_settings

app = typer.Typer(
    help="fhirmwl imaging order broker", no_args_is_help=True, pretty_exceptions_enable=False
)


def _add_subcommands() -> None:
    from fhirmwl.cli_v2 import app as v2_app

    app.add_typer(v2_app, name="v2", help="HL7 v2: map, send, message log")
    from fhirmwl.cli_mwl import app as mwl_app

    app.add_typer(mwl_app, name="mwl", help="DICOM worklist: import, export, show")
    from fhirmwl.cli_orders import catalogue_app, order_app

    app.add_typer(order_app, name="order", help="imaging orders over the FHIR API")
    app.add_typer(catalogue_app, name="catalogue", help="procedure catalogue tools")
    from fhirmwl import cli_ops

    cli_ops.register(app)
    from fhirmwl.cli_client import app as client_app

    app.add_typer(client_app, name="client", help="clients of the built-in token endpoint")
    from fhirmwl.cli_users import app as users_app

    app.add_typer(users_app, name="user", help="desk users of the built-in login")
    from fhirmwl.cli_config import app as config_app

    app.add_typer(config_app, name="config", help="configuration: show effective settings")
    from fhirmwl.cli_security import dev_certs

    app.command("dev-certs")(dev_certs)


@app.command()
def serve(
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    host: str | None = typer.Option(None, help="listen address (env FHIRMWL_HOST)"),
    http_port: int | None = typer.Option(None, help="HTTP port (env FHIRMWL_HTTP_PORT)"),
    mllp_port: int | None = typer.Option(None, help="MLLP port (env FHIRMWL_MLLP_PORT)"),
    dicom_port: int | None = typer.Option(None, help="DICOM port (env FHIRMWL_DICOM_PORT)"),
    ae_title: str | None = typer.Option(None, help="our DICOM AE title (env FHIRMWL_AE_TITLE)"),
    no_mllp: bool = typer.Option(False, "--no-mllp", help="do not start the MLLP listener"),
    no_dicom: bool = typer.Option(False, "--no-dicom", help="do not start the DICOM listener"),
    validation: str | None = typer.Option(None, help="strict | lenient | off"),
    log_level: str | None = typer.Option(None, help="debug | info | warning"),
    log_format: str | None = typer.Option(None, help="text | json (env FHIRMWL_LOG_FORMAT)"),
    audit_syslog: str | None = typer.Option(
        None, help="export audit events to udp://, tcp:// or tls://host:port"
    ),
    demo: bool = typer.Option(False, "--demo", help="load a demo worklist if the store is empty"),
    auth: str | None = typer.Option(None, help="'builtin': bearer tokens from our token endpoint"),
    auth_jwks: str | None = typer.Option(None, help="external issuer's JWKS file or URL"),
    auth_issuer: str | None = typer.Option(None, help="external issuer (iss) to trust"),
    auth_audience: str | None = typer.Option(None, help="expected aud (default: FHIR base)"),
    tls_cert: str | None = typer.Option(None, help="server certificate: TLS on every listener"),
    tls_key: str | None = typer.Option(None, help="private key of --tls-cert"),
    tls_client_ca: str | None = typer.Option(None, help="CA verifying client certificates"),
    tls_require_client_cert: bool = typer.Option(False, help="mutual TLS: refuse clients without"),
    http_tls: str | None = typer.Option(None, help="on | off: TLS on the HTTP listener"),
    mllp_tls: str | None = typer.Option(None, help="on | off: TLS on the MLLP listener"),
    dicom_tls: str | None = typer.Option(None, help="on | off: TLS on the DICOM listener"),
    insecure: bool = typer.Option(False, help="allow a non-loopback host without TLS or auth"),
) -> None:
    """Start the broker (HTTP FHIR API, and the MLLP and DICOM listeners when available)."""
    from fhirmwl.runtime import Runtime

    settings = load_settings(
        config,
        db=db,
        host=host,
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        ae_title=ae_title,
        validation=validation,
        log_level=log_level,
        log_format=log_format,
        audit_syslog=audit_syslog,
        mllp=False if no_mllp else None,
        dicom=False if no_dicom else None,
        auth=auth,
        auth_jwks=auth_jwks,
        auth_issuer=auth_issuer,
        auth_audience=auth_audience,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        tls_require_client_cert=tls_require_client_cert or None,
        http_tls=http_tls,
        mllp_tls=mllp_tls,
        dicom_tls=dicom_tls,
        insecure=insecure or None,
    )
    from fhirmwl.ops.logs import configure
    from fhirmwl.security.posture import startup_problems

    if problems := startup_problems(settings):
        typer.echo("fhirmwl: refusing to start: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    try:
        configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    runtime = Runtime(settings)
    if demo:
        from fhirmwl.demo import load_demo

        loaded = load_demo(runtime.services)
        typer.echo(
            f"fhirmwl: demo worklist: {loaded} order(s) loaded"
            if loaded
            else "fhirmwl: demo worklist: store not empty, nothing loaded"
        )
    typer.echo(f"fhirmwl: FHIR base {settings.fhir_base} (database {settings.db})")
    runtime.run_forever()


@app.command()
def migrate(config: Path | None = _CONFIG, db: str | None = _DB) -> None:
    """Create or upgrade the database schema (every feature's tables), then exit."""
    from fhirmwl.wiring import migrate_schema

    applied, version = migrate_schema(load_settings(config, db=db))
    typer.echo(f"applied {applied or 'nothing'}; schema version {version}")


@app.command()
def reindex(
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    batch: int = typer.Option(500, help="resources per transaction"),
) -> None:
    """Rebuild every derived table (search index, worklist) from the stored resources."""
    from fhirmwl.wiring import build_services

    services = build_services(load_settings(config, db=db))
    try:
        with services.store.read() as tx:
            keys = tx.conn.execute(
                "SELECT res_type, res_id FROM resource WHERE deleted = 0 ORDER BY res_type, res_id"
            ).fetchall()
        for start in range(0, len(keys), batch):
            with services.store.write() as tx:  # write hooks rebuild the worklist rows too
                for res_type, res_id in keys[start : start + batch]:
                    tx.reindex(res_type, res_id)
        typer.echo(f"reindexed {len(keys)} resource(s)")
    finally:
        services.close()


@app.command()
def validate(
    file: Path = typer.Argument(..., help="a JSON resource or Bundle"),
    profile: str | None = typer.Option(None, "--profile", help="profile canonical URL"),
) -> None:
    """Validate a resource against the guide's profiles; exit 1 when there are errors."""
    from fhirmwl.cli_validate import validate_command

    raise typer.Exit(validate_command(file, profile))


_add_subcommands()


def main() -> None:
    """Entry point: a configuration error is one line naming the problem, exit status 2."""
    from fhirmwl.config import ConfigError

    try:
        app()
    except ConfigError as exc:
        typer.echo(f"fhirmwl: configuration error: {exc.message}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
