"""Settings from defaults, an optional TOML file, ``FHIRMWL_*`` environment variables and the
command line, in increasing priority. One flat dataclass so every listener reads the same values.

Every field of ``Settings`` is a setting: its TOML key, its environment variable
``FHIRMWL_<NAME>`` and its type come from the field itself, so a field added to the dataclass is
configurable everywhere without touching the loader. Structured configuration lives in TOML
*sections* (``SECTIONS``: ``[dicom_charsets]``, ``[[station_rules]]``, ``[orders]``, ``[v2]``,
``[notify]``) and reaches the features through ``Settings.extra``.

A file may put the settings at the top level or in a ``[fhirmwl]`` table, and the sections next to
it (``[dicom_charsets]``) or inside it (``[fhirmwl.dicom_charsets]``): every layout the docs show
loads the same way. A key or table the broker does not know is an error that names it, and
``load_sources`` says where each effective value came from (``fhirmwl config show``).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhirmwl.errors import BadRequest

log = logging.getLogger("fhirmwl.config")


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
    log_format: str = "text"  # text | json (one JSON object per line)
    # Retention in days, 0 = keep forever (docs/operations.md); the purge runs every interval s.
    retention_history_days: int = 0  # superseded resource versions
    retention_v2_log_days: int = 0  # HL7 v2 message log rows
    retention_outbox_days: int = 0  # notification events every subscriber has received
    retention_orders_days: int = 0  # completed/revoked orders (whole graph, patients stay)
    retention_interval: int = 3600
    retention_audit_days: int = 0  # audit events (0 keeps them forever)
    audit: bool = True  # record an AuditEvent for every access (docs/audit.md)
    audit_syslog: str = ""  # udp://, tcp:// or tls://host:port of an audit record repository
    audit_syslog_ca: str = ""  # CA file for tls:// (default: the system's trust store)
    shutdown_grace: int = 10  # seconds SIGTERM waits for messages/associations in hand
    catalogue: str = ""  # procedure catalogue file (TOML/JSON)
    # DICOM worklist SCP policy (docs/dicom-conformance.md); per-AE character sets and station
    # rules come from the TOML sections [dicom_charsets] and [[station_rules]].
    dicom_allowed_aets: str = ""  # comma-separated calling AE titles; empty accepts any
    dicom_restrict_station: bool = False
    dicom_max_responses: int = 0  # 0 = unlimited
    worklist_statuses: str = "requested,received,accepted,ready,in-progress"
    worklist_retention_days: int = 0  # hide steps scheduled longer ago than this; 0 = keep
    hl7_destinations: list[dict[str, Any]] = field(default_factory=list)  # [[hl7_destinations]]
    auth: str = ""  # "" (bearer tokens only when auth_jwks is set) | "builtin" (docs/auth.md)
    auth_jwks: str = ""  # external issuer's JWKS: a file path or an http(s) URL
    auth_issuer: str = ""  # the external issuer (iss) whose tokens are accepted
    auth_audience: str = ""  # expected aud of external tokens; default: the FHIR base URL
    auth_token_lifetime: int = 300  # seconds an access token of the built-in server lives
    # The desk's login (authorization code with PKCE; docs/auth.md "Desk login").
    auth_user_token_lifetime: int = 3600  # seconds a desk user's built-in access token lives
    auth_user_session_lifetime: int = 43200  # seconds a desk login lasts by refreshing (0: no)
    auth_desk_client_id: str = "fhirmwl-desk"  # the desk's OAuth client id (public client)
    auth_desk_scope: str = ""  # scopes the desk asks for; empty: all the user's (built-in)
    auth_redirect_uris: str = ""  # more desk callback URLs the built-in server accepts (comma)
    auth_authorize_url: str = ""  # external authorization endpoint; empty: discovered
    auth_token_url: str = ""  # external token endpoint; empty: discovered from auth_issuer
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
    extra: dict[str, Any] = field(default_factory=dict)  # the TOML SECTIONS, by name

    @property
    def fhir_base(self) -> str:
        scheme = "https" if self.tls_cert and self.http_tls else "http"
        return self.base_url.rstrip("/") or f"{scheme}://{self.host}:{self.http_port}/fhir"


@dataclass(frozen=True)
class Section:
    """A TOML section: the keys it allows (None: any key, a map such as AE title → charset)."""

    keys: frozenset[str] | None
    array: bool = False  # [[name]]: an array of tables, each checked against ``keys``
    doc: str = ""


SECTIONS: dict[str, Section] = {
    "dicom_charsets": Section(None, doc="calling AE title -> Specific Character Set"),
    "station_rules": Section(
        frozenset({"ae_title", "modality", "procedure_code", "requesting_service"}),
        array=True,
        doc="Scheduled Station AE Title for steps whose order names none",
    ),
    "orders": Section(
        frozenset(
            {
                "accession_pattern",
                "accession_system",
                "rpid_system",
                "spsid_system",
                "slot_minutes",
                "default_duration",
            }
        ),
        doc="identifiers and scheduling of $create-order (docs/workflow.md)",
    ),
    "v2": Section(
        frozenset({"missing_values", "default_station_ae", "default_modality", "issuers"}),
        doc="HL7 v2 intake (docs/hl7v2.md)",
    ),
    "notify": Section(frozenset({"max_events"}), doc="Subscriptions delivery"),
    "dicom_peers": Section(
        frozenset({"ae_title", "hosts", "cert_subject", "http_clients"}),
        array=True,
        doc="calling AE titles bound to source addresses and client certificates",
    ),
}

DEFAULT, FILE, ENV, CLI = "default", "file", "env", "cli"


class ConfigError(BadRequest):
    """The configuration cannot be used as given (unknown key, wrong type, bad value)."""


def setting_names() -> dict[str, Any]:
    """Every flat setting and its declared type (the dataclass fields, except ``extra``)."""
    return {f.name: f.type for f in fields(Settings) if f.name != "extra"}


_BOOL = {"1": True, "true": True, "yes": True, "on": True}
_BOOL |= {"0": False, "false": False, "no": False, "off": False}


def _coerce(name: str, kind: Any, value: Any, where: str) -> Any:
    kind = getattr(kind, "__name__", kind)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _BOOL:
            return _BOOL[str(value).strip().lower()]
        raise ConfigError(f"{where}: setting {name} must be true or false, got {value!r}")
    if kind in ("int", "float"):
        number = int if kind == "int" else float
        word = "an integer" if kind == "int" else "a number"
        try:
            if isinstance(value, bool):
                raise ValueError
            return number(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: setting {name} must be {word}, got {value!r}") from None
    if str(kind).startswith("list"):
        if isinstance(value, str):  # from the environment: a JSON array
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"{where}: setting {name} must be a JSON array") from None
        if not isinstance(value, list):
            raise ConfigError(f"{where}: setting {name} must be a list, got {value!r}")
        return value
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{where}: setting {name} must be a string, got {value!r}")
    return value


def _unknown(what: str, key: str, known: list[str], where: str, prefix: str = "") -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
    known_list = ", ".join(sorted(known))
    return ConfigError(f"{where}: unknown {what} {prefix + key!r}{hint}; known: {known_list}")


def _check_section(name: str, value: Any, where: str) -> Any:
    spec = SECTIONS[name]
    tables = value if spec.array else [value]
    if spec.array and not isinstance(value, list):
        raise ConfigError(f"{where}: {name} must be an array of tables ([[{name}]])")
    for i, table in enumerate(tables):
        label = f"[[{name}]] #{i + 1}" if spec.array else f"[{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {label} must be a table")
        if spec.keys is not None:
            for key in table:
                if key not in spec.keys:
                    raise _unknown(f"key in {label}", key, sorted(spec.keys), where)
    return value


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat settings, sections) of a TOML file, in any of the documented layouts."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {where}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    names = setting_names()
    flat: dict[str, Any] = {}
    sections: dict[str, Any] = {}

    def take(table: dict[str, Any], prefix: str) -> None:
        for raw_key, value in table.items():
            key = raw_key.replace("-", "_")
            if key in names:
                if key in flat:
                    raise ConfigError(f"{where}: setting {key} is given twice")
                flat[key] = _coerce(key, names[key], value, where)
            elif key in SECTIONS:
                if key in sections:
                    raise ConfigError(f"{where}: section [{key}] is given twice")
                sections[key] = _check_section(key, value, where)
            elif key == "fhirmwl" and not prefix and isinstance(value, dict):
                take(value, "fhirmwl.")
            else:
                is_table = isinstance(value, dict) or (
                    isinstance(value, list) and value and isinstance(value[0], dict)
                )
                what = "section" if is_table else "setting"
                known = list(SECTIONS) if is_table else list(names)
                raise _unknown(what, raw_key, known, where, prefix)

    take(data, "")
    return flat, sections


def _validate(settings: Settings) -> None:
    if settings.validation not in ("strict", "lenient", "off"):
        raise ConfigError(f"validation must be strict, lenient or off, not {settings.validation!r}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone {settings.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)"
        ) from None


# FHIRMWL_* variables that are read elsewhere, not settings: the configuration file, the CLI
# client's token and the test suite's switches.
NON_SETTING_ENV = frozenset(
    {"CONFIG", "TOKEN", "REQUIRE_PG", "REQUIRE_CORPUS", "TEST_PG", "REGEN_GOLDEN", "UPDATE_GOLDEN"}
)


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """``FHIRMWL_*`` variables that name no setting, each with the closest setting's variable:
    a misspelt variable would otherwise be ignored without a word."""
    names = [n.upper() for n in setting_names()]
    found = []
    for var in sorted(os.environ if environ is None else environ):
        if not var.startswith("FHIRMWL_"):
            continue
        name = var.removeprefix("FHIRMWL_")
        if name in names or name in NON_SETTING_ENV:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean FHIRMWL_{close[0]}?)" if close else ""
        found.append(f"{var} is not a setting and is ignored{hint}")
    return found


def load_sources(
    config_file: str | Path | None = None, **overrides: Any
) -> tuple[Settings, dict[str, str]]:
    """The effective settings and, per setting and section, where its value came from:
    ``default``, ``file``, ``env`` (``FHIRMWL_<NAME>``) or ``cli`` (``overrides``)."""
    settings = Settings()
    names = setting_names()
    sources = dict.fromkeys(names, DEFAULT)
    path = config_file or os.environ.get("FHIRMWL_CONFIG")
    if path:
        flat, sections = _read_file(Path(path))
        for key, value in flat.items():
            setattr(settings, key, value)
            sources[key] = FILE
        settings.extra.update(sections)
        sources.update(dict.fromkeys((f"[{s}]" for s in sections), FILE))
    for key, kind in names.items():
        env = os.environ.get(f"FHIRMWL_{key.upper()}")
        if env is not None:
            setattr(settings, key, _coerce(key, kind, env, f"FHIRMWL_{key.upper()}"))
            sources[key] = ENV
    for message in unknown_environment():
        log.warning("%s", message)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in names:
            raise _unknown("setting", key, list(names), "command line")
        setattr(settings, key, _coerce(key, names[key], value, "command line"))
        sources[key] = CLI
    _validate(settings)
    return settings, sources


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    return load_sources(config_file, **overrides)[0]
