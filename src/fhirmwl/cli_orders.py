"""``fhirmwl order …`` and ``fhirmwl catalogue …``: drive the order operations of a running
broker over HTTP and check a procedure catalogue file before deploying it.

The commands talk HTTP (``--base``) rather than opening the database so they work against a
remote broker and exercise the same door a RIS uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer

from fhirmwl.cli_security import TLS_CA, TLS_CERT, TLS_KEY, client_tls
from fhirmwl.errors import BadRequest
from fhirmwl.services.orders.catalogue import load_catalogue

order_app = typer.Typer(
    help="Place and cancel imaging orders on a running broker", no_args_is_help=True
)
catalogue_app = typer.Typer(help="Procedure catalogue tools", no_args_is_help=True)

BASE = typer.Option("http://127.0.0.1:8080/fhir", "--base", help="FHIR base URL of the broker")
TOKEN = typer.Option(None, "--token", envvar="FHIRMWL_TOKEN", help="OAuth 2.0 bearer token")


def _post(
    url: str, body: dict[str, Any] | None, token: str | None = None, tls: Any = None
) -> dict[str, Any]:
    headers = {"Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(url, json=body, timeout=60, headers=headers, verify=tls or True)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    data: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        for item in data.get("issue") or []:
            typer.echo(f"{item.get('severity')}: {item.get('diagnostics')}", err=True)
        raise typer.Exit(1)
    return data


@order_app.command("create")
def create(
    file: Path = typer.Argument(..., help="order Bundle (or Parameters) as JSON"),
    base: str = BASE,
    token: str | None = TOKEN,
    tls_ca: Path | None = TLS_CA,
    tls_cert: Path | None = TLS_CERT,
    tls_key: Path | None = TLS_KEY,
) -> None:
    """POST FILE to $create-order and print the resulting OrderBundle."""
    body = json.loads(file.read_text(encoding="utf-8"))
    tls = client_tls(tls_ca, tls_cert, tls_key)
    url = f"{base.rstrip('/')}/$create-order"
    typer.echo(json.dumps(_post(url, body, token, tls), indent=2))


@order_app.command("cancel")
def cancel(
    order_id: str = typer.Argument(..., help="ServiceRequest id of the order"),
    reason: str = typer.Option("", help="reason text (ORC-16)"),
    base: str = BASE,
    token: str | None = TOKEN,
    tls_ca: Path | None = TLS_CA,
    tls_cert: Path | None = TLS_CERT,
    tls_key: Path | None = TLS_KEY,
) -> None:
    """POST $cancel-order for ServiceRequest/ORDER_ID and print the outcome."""
    body = None
    if reason:
        body = {
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueCodeableConcept": {"text": reason}}],
        }
    url = f"{base.rstrip('/')}/ServiceRequest/{order_id}/$cancel-order"
    data = _post(url, body, token, client_tls(tls_ca, tls_cert, tls_key))
    for p in data.get("parameter") or []:
        if p.get("name") == "outcome":
            for item in p["resource"].get("issue") or []:
                typer.echo(f"{item.get('severity')}: {item.get('diagnostics')}")


@catalogue_app.callback()
def _catalogue() -> None:
    """Procedure catalogue tools (a group even with one command)."""


@catalogue_app.command("check")
def check(file: Path = typer.Argument(..., help="catalogue .toml or .json")) -> None:
    """Validate a procedure catalogue; print its procedures or the first error."""
    try:
        cat = load_catalogue(file)
    except BadRequest as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None
    for key, proc in sorted(cat.procedures.items()):
        typer.echo(
            f"{key}: {proc.modality} on {', '.join(proc.stations)}"
            f" ({proc.duration or 'default'} min)"
        )
    typer.echo(f"ok: {len(cat.procedures)} procedure(s), {len(cat.stations)} station(s)")
