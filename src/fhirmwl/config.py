"""Settings from defaults, an optional TOML file, ``FHIRMWL_*`` environment variables and the
command line, in increasing priority. One flat dataclass so every listener reads the same values.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fhirmwl.errors import BadRequest


@dataclass
class Settings:
    db: str = "sqlite:///./data/fhirmwl.db"
    host: str = "127.0.0.1"
    http_port: int = 8080
    http: bool = True
    web: bool = True  # the web desk at /ui/ (worklist, orders, messages; docs/web.md)
    mllp_port: int = 2575
    mllp: bool = True
    mllp_max_message_bytes: int = 1 << 20  # larger frames are answered AR 207
    mllp_idle_timeout: int = 300  # seconds before an idle MLLP connection is closed
    mllp_workers: int = 8  # threads applying messages (connections are served concurrently)
    dicom_port: int = 11112
    dicom: bool = True
    ae_title: str = "FHIRMWL"
    base_url: str = ""  # public FHIR base; default http://HOST:PORT/fhir
    validation: str = "strict"  # strict | lenient | off
    timezone: str = "UTC"  # the modalities' wall clock, for DICOM dates and times
    uid_root: str = ""  # empty: 2.25.<uuid>
    log_level: str = "info"
    catalogue: str = ""  # procedure catalogue file (TOML/JSON)
    # DICOM worklist SCP policy (docs/dicom-conformance.md); per-AE character sets and station
    # rules come from the TOML sections [dicom_charsets] and [[station_rules]].
    dicom_allowed_aets: str = ""  # comma-separated calling AE titles; empty accepts any
    dicom_restrict_station: bool = False
    dicom_max_responses: int = 0  # 0 = unlimited
    worklist_statuses: str = "requested,received,accepted,ready,in-progress"
    worklist_retention_days: int = 0  # hide steps scheduled longer ago than this; 0 = keep
    extra: dict[str, Any] = field(default_factory=dict)  # other [sections] of the TOML file

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/") or f"http://{self.host}:{self.http_port}/fhir"


_BOOL_TRUE = {"1", "true", "yes", "on"}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind in (bool, "bool"):
        return value if isinstance(value, bool) else str(value).lower() in _BOOL_TRUE
    if kind in (int, "int"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadRequest(f"setting {name} must be an integer, got {value!r}") from None
    return value


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    settings = Settings()
    names = {f.name: f.type for f in fields(Settings) if f.name != "extra"}
    path = config_file or os.environ.get("FHIRMWL_CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        section = data.get("fhirmwl", data)
        for key, value in section.items():
            key = key.replace("-", "_")
            if key in names:
                setattr(settings, key, _coerce(key, names[key], value))
            elif isinstance(value, (dict, list)):
                settings.extra[key] = value
    for key, kind in names.items():
        env = os.environ.get(f"FHIRMWL_{key.upper()}")
        if env is not None:
            setattr(settings, key, _coerce(key, kind, env))
    for key, value in overrides.items():
        if value is not None and key in names:
            setattr(settings, key, _coerce(key, names[key], value))
    if settings.validation not in ("strict", "lenient", "off"):
        raise BadRequest(f"validation must be strict, lenient or off, not {settings.validation!r}")
    return settings
