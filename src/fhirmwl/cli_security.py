"""``fhirmwl dev-certs`` and the TLS options shared by the client commands (``v2 send``).

Kept apart from ``cli.py`` so the trust-boundary commands live in one place; ``cli.py`` only
registers them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import typer

from fhirmwl.errors import BadRequest

TLS_CA = typer.Option(None, "--tls-ca", help="CA file to verify the server (turns TLS on)")
TLS_CERT = typer.Option(None, "--tls-cert", help="client certificate (PEM) for mutual TLS")
TLS_KEY = typer.Option(None, "--tls-key", help="private key of --tls-cert (PEM)")


def client_tls(
    ca: Path | None, cert: Path | None, key: Path | None, force: bool = False
) -> ssl.SSLContext | None:
    """A client context when any TLS option is given (or ``force``), else ``None``."""
    from fhirmwl.security.tls import client_context

    if not (ca or cert or force):
        return None
    try:
        return client_context(str(ca or ""), str(cert or ""), str(key or ""))
    except BadRequest as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from None


def dev_certs(
    out: Path = typer.Option(..., "--out", help="directory to write the PEM files into"),
    client_cn: str = typer.Option(
        "fhirmwl-dev-client", "--client-cn", help="common name of the client certificate"
    ),
) -> None:
    """Write a development CA, a server certificate (localhost, 127.0.0.1) and a client one."""
    from fhirmwl.security.devcerts import write_dev_certs

    for path in write_dev_certs(out, client_cn):
        typer.echo(str(path))
