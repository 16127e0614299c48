"""``fhirmwl user add|set|list|remove``: desk users of the built-in authorization server.

Like ``fhirmwl client``, the commands write the store directly: adding the first user is an
administrator's act on the broker's database and must work before anyone can log in. The
password is never an argument (it would end up in the shell history and in ``ps``): it is asked
for twice on a terminal, or read as one line from standard input (``--password-stdin``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fhirmwl.cli_client import _CONFIG, _DB, _database
from fhirmwl.security import users

app = typer.Typer(help="Desk users of the built-in authorization server", no_args_is_help=True)


def _password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def add(
    name: str = typer.Argument(..., help="user name typed at the login form"),
    scope: str = typer.Option(..., "--scope", help='allowed scopes, e.g. "user/*.rs"'),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password as one line from standard input"
    ),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Add desk user NAME with a password (asked for) and the scopes it may use."""
    password = _password(password_stdin)
    with _database(config, db) as (database, _):
        user = users.add_user(database, name, password, scope)
    typer.echo(f"added user {user.name} (scope: {user.scope})")


@app.command("set")
def set_(
    name: str = typer.Argument(..., help="user name"),
    scope: str | None = typer.Option(None, "--scope", help="new allowed scopes"),
    password: bool = typer.Option(False, "--password", help="set a new password (asked for)"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the new password as one line from standard input"
    ),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Change user NAME's scopes and/or password; an open desk session keeps its token."""
    if scope is None and not (password or password_stdin):
        raise typer.BadParameter("give --scope, --password or --password-stdin")
    new_password = _password(password_stdin) if password or password_stdin else None
    with _database(config, db) as (database, _):
        user = users.change_user(database, name, password=new_password, scope=scope)
    changed = (
        "password and scope" if new_password and scope else "password" if new_password else "scope"
    )
    typer.echo(f"changed the {changed} of user {user.name} (scope: {user.scope})")


@app.command("list")
def list_(config: Path | None = _CONFIG, db: str | None = _DB) -> None:
    """List desk users: name, allowed scopes, creation time (never a password)."""
    with _database(config, db) as (database, _):
        found = users.list_users(database)
    for user in found:
        typer.echo(f"{user.name}\t{user.scope}\t{user.created}")
    if not found:
        typer.echo("no users")


@app.command("remove")
def remove(
    name: str = typer.Argument(..., help="user name"),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Remove user NAME: no new logins; an open desk session ends when its token expires."""
    with _database(config, db) as (database, _):
        users.remove_user(database, name)
    typer.echo(f"removed user {name}")
