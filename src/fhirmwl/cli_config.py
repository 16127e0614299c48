"""``fhirmwl config show``: the effective settings, each with where its value came from.

The output is itself a TOML configuration file (flat layout; comments name the source:
``default``, ``file``, ``env`` or ``cli``), so it can be saved and loaded again. The few lines of
TOML writing are hand-made because the standard library only reads TOML and the values are
plain strings, numbers, booleans, arrays and tables. A password in the database URL is masked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from fhirmwl.cli_options import CONFIG as _CONFIG
from fhirmwl.cli_options import DB as _DB
from fhirmwl.config import SECTIONS, load_sources, setting_names, unknown_environment

app = typer.Typer(no_args_is_help=True)
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(str(value), ensure_ascii=False)


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def render(config: Path | None = None, **overrides: Any) -> str:
    settings, sources = load_sources(config, **overrides)
    lines = ["# fhirmwl effective configuration (# where each value came from)"]
    for name in setting_names():
        value = getattr(settings, name)
        if name == "db":
            value = mask_url(value)
        lines.append(f"{name} = {toml_value(value)}  # {sources[name]}")
    for name, spec in SECTIONS.items():
        value = settings.extra.get(name)
        source = sources.get(f"[{name}]", "default")
        lines.append("")
        if value is None:
            lines.append(f"# [{name}] not set ({spec.doc})  # {source}")
        elif spec.array:
            for table in value:
                lines.append(f"[[{name}]]  # {source}")
                lines += [f"{_key(k)} = {toml_value(v)}" for k, v in table.items()]
        else:
            lines.append(f"[{name}]  # {source}")
            lines += [f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()]
    ignored = unknown_environment()
    if ignored:
        lines += ["", *(f"# warning: {message}" for message in ignored)]
    return "\n".join(lines) + "\n"


@app.command()
def show(
    config: Path | None = _CONFIG,
    db: str | None = _DB,
) -> None:
    """Print the effective settings and where each came from (default/file/env/cli)."""
    typer.echo(render(config, db=db), nl=False)
