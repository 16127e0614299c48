"""The ``--config`` and ``--db`` options every command that opens the store shares, defined once
so their help and environment variables read the same in every ``--help``."""

from __future__ import annotations

import typer

CONFIG = typer.Option(None, "--config", "-c", help="TOML config file (env FHIRMWL_CONFIG)")
DB = typer.Option(None, "--db", help="database URL (env FHIRMWL_DB; default as for serve)")
