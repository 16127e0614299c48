"""`fhirmwl v2 …`: try the HL7 v2 intake from the shell, without a running server.

`to-fhir` shows what a message maps to (the transaction Bundle, or the patient commands of an
ADT message) and the ACK it would get, so an integration engineer can check a sender's messages
before connecting it; `send` pushes messages to any MLLP listener and prints the replies.
`log` lists what the running broker received (from the message log in the database) and
`replay` feeds a logged message through the intake again, e.g. after a store failure.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import typer

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.cli_security import TLS_CA, TLS_CERT, TLS_KEY, client_tls
from fhirmwl.mapping.v2_to_fhir import (
    MappingContext,
    MissingValue,
    MissingValuePolicy,
    OrderMessage,
)
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import MLLPError, send_messages

app = typer.Typer(help="HL7 v2 tools: map to FHIR, send over MLLP, message log and replay.")


def _readable(ack: bytes) -> str:
    return ack.decode("utf-8", errors="replace").replace("\r", "\n").rstrip("\n")


@app.command("to-fhir")
def to_fhir(
    file: Path = typer.Argument(..., help="one HL7 v2 message (any segment terminator)"),
    summary: bool = typer.Option(False, "--summary", help="print the whole mapping result"),
    uid_root: str | None = typer.Option(None, "--uid-root", help="root for generated UIDs"),
    timezone: str = typer.Option("UTC", "--timezone", help="zone of v2 times without offset"),
    reject_missing: bool = typer.Option(
        False, "--reject-missing", help="reject instead of generating missing accession/UIDs/IDs"
    ),
) -> None:
    """Print the FHIR transaction Bundle FILE maps to; exit 1 (and print the ACK) if refused."""
    policy = MissingValue.REJECT if reject_missing else MissingValue.GENERATE
    ctx = MappingContext(
        uid_root=uid_root,
        timezone=timezone,
        policy=MissingValuePolicy(policy, policy, policy, policy),
    )
    try:
        raw = file.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = evaluate(raw, ctx)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if result.mapped is None:
        typer.echo(_readable(result.ack), err=True)
        raise typer.Exit(1)
    if summary or not isinstance(result.mapped, OrderMessage):
        out = dataclasses.asdict(result.mapped)
    else:
        out = result.mapped.bundle
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


@app.command("send")
def send(
    files: list[Path] = typer.Argument(..., help="messages to send, one per file, in order"),
    host: str = typer.Option("127.0.0.1", "--host", help="MLLP listener host"),
    port: int = typer.Option(2575, "--port", help="MLLP listener port"),
    timeout: float = typer.Option(30.0, "--timeout", help="seconds to wait for each ACK"),
    tls_ca: Path | None = TLS_CA,
    tls_cert: Path | None = TLS_CERT,
    tls_key: Path | None = TLS_KEY,
) -> None:
    """Send each FILE over one MLLP connection and print every ACK; exit 1 if any is not AA."""
    messages = [f.read_bytes() for f in files]
    context = client_tls(tls_ca, tls_cert, tls_key)
    try:
        acks = send_messages(host, port, messages, timeout, context)
    except (OSError, MLLPError) as exc:
        typer.echo(f"MLLP error: {exc}", err=True)
        raise typer.Exit(2) from exc
    ok = True
    for path, ack in zip(files, acks, strict=False):
        typer.echo(f"--- {path}")
        text = _readable(ack)
        typer.echo(text)
        ok = ok and any(line.startswith(("MSA|AA", "MSA|CA")) for line in text.splitlines())
    raise typer.Exit(0 if ok else 1)


def _services(config: Path | None, db: str | None) -> Any:
    from fhirmwl.config import load_settings
    from fhirmwl.wiring import build_services

    return build_services(load_settings(config, db=db))


@app.command("log")
def show_log(
    limit: int = typer.Option(20, "--limit", help="newest N messages"),
    status: str | None = typer.Option(
        None, "--status", help="applied | refused | rejected | failed | duplicate"
    ),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
    outbound: bool = typer.Option(False, "--outbound", help="messages sent to destinations"),
    destination: str | None = typer.Option(None, "--destination", help="with --outbound"),
    order: str | None = typer.Option(None, "--order", help="with --outbound: ServiceRequest id"),
) -> None:
    """List received (or, with --outbound, sent) messages, newest first."""
    from fhirmwl.services.ingest_v2 import log

    if outbound:
        from fhirmwl.outbound.log import print_log

        filters = {"limit": limit, "status": status, "dest": destination, "order_id": order}
        return print_log(_services(config, db), typer.echo, **filters)
    if status and status not in log.STATUSES:
        typer.echo(f"--status must be one of {', '.join(log.STATUSES)}", err=True)
        raise typer.Exit(2)
    services = _services(config, db)
    try:
        with services.store.read() as tx:
            rows = log.recent(tx.conn, limit, status)
    finally:
        services.close()
    for r in rows:
        sender = f"{r.sending_application}/{r.sending_facility}"
        detail = f"  {r.error}" if r.error else ""
        typer.echo(
            f"{r.id:>6}  {r.received_at}  {sender:<20} {r.control_id:<20} {r.message_type:<8} "
            f"{r.status:<9} {r.ack_code}  {len(r.touched)} resources{detail}"
        )


@app.command("replay")
def replay(
    log_id: int = typer.Argument(..., help="message log id (see `fhirmwl v2 log`)"),
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Run a logged message through the intake again and print the ACK (exit 1 if not AA).

    An already applied message is recognised as a retransmission and answered with its stored
    ACK; refused and failed messages are applied anew.
    """
    from fhirmwl.services.ingest_v2 import ingest, log

    services = _services(config, db)
    try:
        with services.store.read() as tx:
            record = log.get(tx.conn, log_id)
        if record is None:
            typer.echo(f"no message {log_id} in the log", err=True)
            raise typer.Exit(2)
        ack = ingest(services, record.raw)
    finally:
        services.close()
    text = _readable(ack)
    typer.echo(text)
    raise typer.Exit(0 if any(x.startswith("MSA|AA") for x in text.splitlines()) else 1)
