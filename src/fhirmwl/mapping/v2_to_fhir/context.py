"""The injected context of the v2 → FHIR mapping: clock, id/UID factories, systems, policies.

Mapping functions are pure: everything that would otherwise come from the environment (time,
random ids, configured identifier systems, what to do when the worklist needs a value the
message lacks) comes in through `MappingContext`, so golden tests are stable. Generated business
identifiers are derived deterministically from the order's received keys (placer/filler number),
so that a retransmitted message maps to the same accession number / UIDs and stays idempotent.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from fhirmwl.fhir.model import STATION_AE_SYSTEM

_UID_NAMESPACE = uuid.UUID("6f1c2a1e-3c51-4f0e-9a55-2f3b7f0d9c11")


class MissingValue(StrEnum):
    """What to do when a value the worklist needs is absent from the message."""

    GENERATE = "generate"
    REJECT = "reject"


@dataclass(frozen=True)
class MissingValuePolicy:
    accession_number: MissingValue = MissingValue.GENERATE
    study_instance_uid: MissingValue = MissingValue.GENERATE
    sps_id: MissingValue = MissingValue.GENERATE
    requested_procedure_id: MissingValue = MissingValue.GENERATE


@dataclass(frozen=True)
class IdentifierSystems:
    """Identifier systems used when the message names no assigning authority."""

    patient: str = "urn:fhirmwl:id:patient"
    visit: str = "urn:fhirmwl:id:visit"
    accession: str = "urn:fhirmwl:id:accession"
    placer: str = "urn:fhirmwl:id:placer"
    filler: str = "urn:fhirmwl:id:filler"
    requested_procedure: str = "urn:fhirmwl:id:requested-procedure"
    sps: str = "urn:fhirmwl:id:sps"
    practitioner: str = "urn:fhirmwl:id:practitioner"
    station_ae: str = STATION_AE_SYSTEM
    issuer_prefix: str = "urn:fhirmwl:issuer:"
    issuers: dict[str, str] = field(default_factory=dict)  # namespace id → system override

    def for_issuer(self, namespace: str, universal: str, universal_type: str, default: str) -> str:
        """System for an HD assigning authority (CX-4, EI-2..4): configured, OID, URI, or local."""
        if namespace and namespace in self.issuers:
            return self.issuers[namespace]
        utype = universal_type.upper()
        if universal and utype == "ISO":
            return f"urn:oid:{universal}"
        if universal and utype == "UUID":
            return f"urn:uuid:{universal.lower()}"
        if universal and utype in ("URI", "DNS", "URL"):
            return universal
        if namespace:
            return f"{self.issuer_prefix}{namespace}"
        if universal:
            return f"{self.issuer_prefix}{universal}"
        return default


@dataclass(frozen=True)
class MappingContext:
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    new_uuid: Callable[[], uuid.UUID] = field(default=uuid.uuid4)
    uid_root: str | None = None
    timezone: str = "UTC"
    systems: IdentifierSystems = field(default_factory=IdentifierSystems)
    policy: MissingValuePolicy = field(default_factory=MissingValuePolicy)
    default_station_ae: str | None = None
    # Station assignment rules (modality, protocol codes) -> AE title, consulted before the
    # default station when the message names no station (IPC-9 absent).
    station_for: Callable[[str, set[str]], str | None] | None = None

    def full_url(self) -> str:
        return f"urn:uuid:{self.new_uuid()}"

    def make_uid(self, seed: str) -> str:
        """A DICOM UID derived from ``seed``: under ``uid_root`` or `2.25.` + UUID as integer."""
        if self.uid_root:
            digits = str(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big"))
            room = 64 - len(self.uid_root) - 1
            tail = digits[:room].lstrip("0") or "1"
            return f"{self.uid_root}.{tail}"
        return f"2.25.{uuid.uuid5(_UID_NAMESPACE, seed).int}"

    def make_id(self, kind: str, seed: str) -> str:
        """A 16-character (DICOM SH) identifier derived from ``kind`` and ``seed``."""
        return "G" + hashlib.sha256(f"{kind}|{seed}".encode()).hexdigest()[:15].upper()
