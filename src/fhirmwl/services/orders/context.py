"""What the order lifecycle needs from its surroundings, injected so the rules stay testable.

The lifecycle functions are called from the FHIR operations and (later) from the HL7 v2 intake;
both build one ``OrderContext`` per process from the settings. Clock and UID factory are
injectable so tests and golden files are stable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from fhirmwl.services.orders.catalogue import Catalogue


def default_uid_factory(root: str = "") -> Callable[[], str]:
    """DICOM UIDs: ``<root>.<random digits>`` (≤ 64 chars) or ``2.25.<uuid as integer>``."""
    root = root.strip().rstrip(".")

    def make() -> str:
        value = uuid.uuid4().int
        if not root:
            return f"2.25.{value}"
        room = 64 - len(root) - 1
        return f"{root}.{value % (10**room) or 1}"

    return make


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OrderSettings:
    """The ``[orders]`` section of the TOML config (all optional)."""

    accession_pattern: str = "{seq:08d}"  # str.format with seq (int) and now (datetime)
    accession_system: str = ""  # Identifier.system (issuer) of assigned accession numbers
    rpid_system: str = ""
    spsid_system: str = ""
    slot_minutes: int = 5  # a step without a time starts at the next slot boundary
    default_duration: int = 15  # minutes, when the catalogue gives none
    default_modality: str = "OT"  # a step without a DICOM modality the catalogue can't give

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> OrderSettings:
        section = extra.get("orders") or {}
        known = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class OrderContext:
    catalogue: Catalogue
    settings: OrderSettings = field(default_factory=OrderSettings)
    base: str = ""  # FHIR base URL for fullUrls in returned Bundles
    clock: Callable[[], datetime] = utc_now
    uid_factory: Callable[[], str] = field(default_factory=default_uid_factory)
    resources: Any = None  # ResourceService
    bundles: Any = None  # BundleProcessor
    timezone: tzinfo = UTC  # local time of the worklist (station load per day)
    indexer: Any = None  # WorklistIndexer: is a step on the worklist, and if not, why
    worklist_statuses: frozenset[str] = frozenset({"requested", "received", "accepted", "ready"})


@dataclass
class OrderResult:
    """The outcome of a lifecycle call: the order as an OrderBundle, plus findings."""

    isr_id: str
    bundle: dict[str, Any]
    created: bool = False
    issues: list[dict[str, Any]] = field(default_factory=list)
