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
    # Trust boundary (docs/security.md): TLS on every listener, secure defaults, limits.
    tls_cert: str = ""  # server certificate chain (PEM); with tls_key turns TLS on
    tls_key: str = ""  # private key of tls_cert (PEM)
    tls_client_ca: str = ""  # CA bundle verifying client certificates (mutual TLS)
    tls_require_client_cert: bool = False  # refuse TLS peers without a valid client certificate
    http_tls: bool = True  # with tls_cert: HTTPS; off keeps the HTTP listener in clear
    mllp_tls: bool = True  # with tls_cert: MLLP over TLS; off keeps MLLP in clear
    dicom_tls: bool = True  # with tls_cert: DICOM TLS; off keeps DICOM in clear
    insecure: bool = False  # allow a non-loopback listener without TLS and authentication
    subscription_allow: str = ""  # comma-separated hosts/CIDRs a Subscription may target freely
    http_max_body_bytes: int = 16 << 20  # larger request bodies are answered 413
    http_max_bundle_entries: int = 1000  # Bundles with more entries are answered 413
    http_header_timeout: int = 10  # seconds to send a request's headers, else 408 and close
    http_max_header_bytes: int = 64 << 10  # larger request line + headers are answered 431
    http_max_connections: int = 1000  # further concurrent HTTP connections are answered 503
    mllp_max_connections: int = 100  # further MLLP connections are closed at once
    mllp_max_connections_per_peer: int = 50  # per source address (half the total); more closed
    dicom_artim_timeout: int = 10  # seconds a new DICOM connection has to send A-ASSOCIATE-RQ
    dicom_idle_timeout: int = 60  # seconds an idle association is kept before it is aborted
    dicom_max_associations: int = 32  # all peers together; more are rejected (local limit)
    dicom_max_associations_per_peer: int = 4  # per source address; more are refused
    dicom_require_called_aet: bool = True  # reject associations not called ae_title
    extra: dict[str, Any] = field(default_factory=dict)  # other [sections] of the TOML file

    @property
    def fhir_base(self) -> str:
        scheme = "https" if self.tls_cert and self.http_tls else "http"
        return self.base_url.rstrip("/") or f"{scheme}://{self.host}:{self.http_port}/fhir"


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
        if section is not data:  # [dicom_charsets], [[dicom_peers]] … next to [fhirmwl]
            for key, value in data.items():
                if key != "fhirmwl" and isinstance(value, (dict, list)):
                    settings.extra.setdefault(key.replace("-", "_"), value)
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
