"""``fhirmwl client add|list|remove|keygen|token``: backend clients of the built-in token endpoint.

The commands write the store directly (like ``migrate``), not over HTTP: registering a client is
an administrator's act on the broker's own database, and it must work before the first client
can get a token at all. ``keygen`` and ``token`` are the client's side, so that a site can try
the whole flow from the shell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.config import load_settings
from fhirmwl.errors import FhirMwlError
from fhirmwl.security import keystore, users
from fhirmwl.security.authserver import auth_base
from fhirmwl.store.db import Database, open_database

app = typer.Typer(help="Clients of the built-in token endpoint", no_args_is_help=True)


@contextmanager
def _database(config: Path | None, db: str | None) -> Iterator[tuple[Database, str]]:
    from fhirmwl.store.migrations import migrate

    settings = load_settings(config, db=db)
    database = open_database(settings.db)
    try:
        keystore.register_migration()
        users.register_migration()  # fhirmwl user … shares this helper
        migrate(database)
        yield database, settings.fhir_base
    except FhirMwlError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.close()


@app.command("add")
def add(
    name: str = typer.Argument(..., help="client id the client puts in iss/sub of its assertion"),
    jwks: Path = typer.Option(..., "--jwks", help="the client's public keys (JWKS JSON file)"),
    scope: str = typer.Option(..., "--scope", help='allowed scopes, e.g. "system/Task.rs"'),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Register client NAME with its public keys and the scopes it may ask for."""
    try:
        text = jwks.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot read {jwks}: {exc}", err=True)
        raise typer.Exit(1) from None
    with _database(config, db) as (database, fhir_base):
        client = keystore.add_client(database, name, text, scope)
    typer.echo(f"registered client {client.client_id} (scope: {client.scope})")
    typer.echo(f"token endpoint: {auth_base(fhir_base)}/token")


@app.command("list")
def list_(config: Path | None = _CONFIG, db: str | None = _DB) -> None:
    """List registered clients: id, allowed scopes, registration time."""
    with _database(config, db) as (database, _):
        clients = keystore.list_clients(database)
    for client in clients:
        typer.echo(f"{client.client_id}\t{client.scope}\t{client.created}")
    if not clients:
        typer.echo("no clients registered")


@app.command("remove")
def remove(
    name: str = typer.Argument(..., help="client id"),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Remove client NAME; it gets no new tokens (tokens already issued expire on their own)."""
    with _database(config, db) as (database, _):
        keystore.remove_client(database, name)
    typer.echo(f"removed client {name}")


@app.command("keygen")
def keygen(
    name: str = typer.Argument(..., help="client id; files are NAME-key.pem and NAME-jwks.json"),
    out: Path = typer.Option(Path("."), "--out", help="directory for the two files"),
    alg: str = typer.Option("ES384", "--alg", help="ES384 or RS384"),
) -> None:
    """Make a key pair for a backend client: the private key (keep it) and the JWKS to register."""
    from fhirmwl.security import client as backend

    try:
        key = backend.generate_key(alg)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    key_file, jwks_file = out / f"{name}-key.pem", out / f"{name}-jwks.json"
    try:  # never overwrite a private key; readable by its owner only
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        typer.echo(f"error: {key_file} exists; remove it or choose another name", err=True)
        raise typer.Exit(1) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(backend.private_pem(key))
    jwks_file.write_text(json.dumps({"keys": [backend.public_jwk(key)]}, indent=2) + "\n")
    typer.echo(f"private key: {key_file}\npublic JWKS: {jwks_file}")


@app.command("token")
def token(
    name: str = typer.Argument(..., help="client id"),
    key: Path = typer.Option(..., "--key", help="the client's private key (PEM)"),
    base: str = typer.Option("http://127.0.0.1:8080/fhir", "--base", help="FHIR base URL"),
    scope: str = typer.Option("", "--scope", help="scopes to ask for (default: all registered)"),
) -> None:
    """Get an access token from the built-in token endpoint and print it (for FHIRMWL_TOKEN)."""
    import httpx

    from fhirmwl.security import client as backend

    try:
        private = backend.load_private_key(key.read_bytes())
        with httpx.Client(timeout=30) as http:
            answer = backend.fetch_token(base, name, private, scope, http)
    except (OSError, ValueError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(answer["access_token"])
