"""``[[hl7_destinations]]``: where outbound HL7 v2 order messages go, and which ones.

```toml
[[hl7_destinations]]
name = "pacs"                 # unique; the log and the delivery cursor are kept per name
host = "10.0.0.5"
port = 2575
message_type = "OMI^O23"      # or "ORM^O01" (IHE 2.3.1 with ZDS)
version = "2.5.1"             # MSH-12; default 2.5.1 for OMI, 2.3.1 for ORM
messages = ["procedure-scheduled", "procedure-updated", "procedure-cancelled"]  # default
receiving_application = "PACS"  # MSH-5 (default: the name); MSH-3/4/6 likewise
max_attempts = 3              # AE/AR answers before a message is given up (logged)
modalities = ["CT", "MR"]     # optional: only orders with a step of these modalities
stations = ["CT1"]            # optional: only orders with a step on these AE titles
timeout = 10                  # seconds to wait for the ACK
tls = true                    # MLLP over TLS 1.2+; the server name is checked against host
tls_ca = "/etc/fhirmwl/pacs-ca.pem"     # optional: CA of the receiver (default: system store)
tls_cert = "/etc/fhirmwl/client.pem"    # optional: client certificate (mutual TLS)
tls_key = "/etc/fhirmwl/client-key.pem" # optional: its private key
```
The environment variable ``FHIRMWL_HL7_DESTINATIONS`` may hold the same as a JSON array.
``order-status`` (ORC-1 SC with ORC-5, RAD-3) is for an Order Placer and is sent only when
listed. With ``tls = true`` the connection is TLS (``security.tls.client_context``: TLS 1.2+, the
BCP 195 ciphers, certificate and host name verified); the certificate files are read when the
broker starts (``Destination.tls_context``), so a missing or wrong file stops start-up. TLS
settings without ``tls = true`` are refused rather than silently ignored (sent in clear).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

from fhirmwl.errors import BadRequest
from fhirmwl.outbound.messages import CANCELLED, EVENTS, SCHEDULED, UPDATED, Header

DEFAULT_EVENTS = (SCHEDULED, UPDATED, CANCELLED)
TYPES = ("OMI^O23", "ORM^O01")


@dataclass(frozen=True)
class Destination:
    name: str
    host: str
    port: int
    header: Header
    events: tuple[str, ...] = DEFAULT_EVENTS
    max_attempts: int = 3
    timeout: float = 10.0
    filters: tuple[tuple[str, str], ...] = ()  # (station | modality, comma-separated values)
    tls: bool = False
    tls_ca: str = ""  # CA file verifying the receiver; empty: the system trust store
    tls_cert: str = ""  # client certificate chain (mutual TLS)
    tls_key: str = ""  # its private key

    def tls_context(self) -> ssl.SSLContext | None:
        """The client context (files read now: a wrong one raises BadRequest), or None."""
        if not self.tls:
            return None
        from fhirmwl.security.tls import client_context

        return client_context(self.tls_ca, self.tls_cert, self.tls_key)


def _int(entry: dict[str, Any], key: str, default: int, where: str) -> int:
    try:
        return int(entry.get(key, default))
    except (TypeError, ValueError):
        raise BadRequest(f"{where}.{key} must be an integer") from None


def _tls(entry: dict[str, Any], where: str) -> tuple[bool, str, str, str]:
    """(tls, tls_ca, tls_cert, tls_key) of an entry; TLS files without ``tls = true`` refused."""
    on = entry.get("tls", False)
    if not isinstance(on, bool):
        raise BadRequest(f"{where}.tls must be true or false")
    ca, cert, key = (str(entry.get(k) or "") for k in ("tls_ca", "tls_cert", "tls_key"))
    if (ca or cert or key) and not on:
        raise BadRequest(f"{where}: tls_ca, tls_cert and tls_key need tls = true")
    if key and not cert:
        raise BadRequest(f"{where}.tls_key needs tls_cert")
    return on, ca, cert, key


def parse_destinations(entries: Any) -> list[Destination]:
    """Validate the TOML array; a wrong entry stops start-up with a message naming it."""
    if isinstance(entries, str) and entries.strip():  # FHIRMWL_HL7_DESTINATIONS: a JSON array
        try:
            entries = json.loads(entries)
        except json.JSONDecodeError:
            raise BadRequest("FHIRMWL_HL7_DESTINATIONS must be a JSON array of objects") from None
    if not entries:
        return []
    if not isinstance(entries, list):
        raise BadRequest("hl7_destinations must be an array of tables ([[hl7_destinations]])")
    out: list[Destination] = []
    for i, entry in enumerate(entries):
        where = f"hl7_destinations[{i}]"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("host"):
            raise BadRequest(f"{where} needs name and host")
        tls = _tls(entry, where)
        kind = str(entry.get("message_type", "OMI^O23")).upper()
        if kind not in TYPES:
            raise BadRequest(f"{where}.message_type must be one of {', '.join(TYPES)}")
        events = tuple(entry.get("messages") or DEFAULT_EVENTS)
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise BadRequest(f"{where}.messages: unknown {unknown[0]!r}; known: {EVENTS}")
        filters = []
        for key, param in (("modalities", "modality"), ("stations", "station")):
            values = entry.get(key) or []
            if not isinstance(values, list):
                raise BadRequest(f"{where}.{key} must be an array of strings")
            if values:
                filters.append((param, ",".join(str(v) for v in values)))
        name = str(entry["name"])
        header = Header(
            message_type=kind,
            version=str(entry.get("version") or ("2.5.1" if kind == "OMI^O23" else "2.3.1")),
            sending_application=str(entry.get("sending_application", "FHIRMWL")),
            sending_facility=str(entry.get("sending_facility", "")),
            receiving_application=str(entry.get("receiving_application", name)),
            receiving_facility=str(entry.get("receiving_facility", "")),
        )
        out.append(
            Destination(
                name,
                str(entry["host"]),
                _int(entry, "port", 2575, where),
                header,
                events,
                max(1, _int(entry, "max_attempts", 3, where)),
                float(entry.get("timeout", 10.0)),
                tuple(filters),
                *tls,
            )
        )
    if len({d.name for d in out}) != len(out):
        raise BadRequest("hl7_destinations: names must be unique")
    return out
