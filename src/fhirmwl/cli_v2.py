"""`fhirmwl v2 …`: try the HL7 v2 intake from the shell, without a running server.

`to-fhir` shows what a message maps to (the transaction Bundle, or the patient commands of an
ADT message) and the ACK it would get, so an integration engineer can check a sender's messages
before connecting it; `send` pushes messages to any MLLP listener and prints the replies.
The `log` and `replay` commands need the message store and are added with it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import typer

from fhirmwl.mapping.v2_to_fhir import (
    MappingContext,
    MissingValue,
    MissingValuePolicy,
    OrderMessage,
)
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import MLLPError, send_messages

app = typer.Typer(help="HL7 v2 tools: map a message to FHIR, send messages over MLLP.")


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
) -> None:
    """Send each FILE over one MLLP connection and print every ACK; exit 1 if any is not AA."""
    messages = [f.read_bytes() for f in files]
    try:
        acks = send_messages(host, port, messages, timeout)
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
