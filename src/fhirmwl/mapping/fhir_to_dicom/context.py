"""Inputs of the FHIR → DICOM worklist mapping: the resource graph of one step and the context.

The mapping is pure: the store (or a test) assembles the graph of one Scheduled Procedure Step
(Task → RequestedProcedure → ImagingServiceRequest → Patient, Encounter, Device, ImagingStudy,
plus the Practitioners/Locations they reference) and passes the configured time zone and
policies in. Nothing here reads a database or a clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.mapping.v2_to_fhir.context import IdentifierSystems

Resource = dict[str, Any]

# Task.status → (0040,0020) Scheduled Procedure Step Status (spec/ig.md §4.4).
SPS_STATUS_FOR_TASK = {
    "requested": "SCHEDULED",
    "received": "SCHEDULED",
    "accepted": "SCHEDULED",
    "ready": "READY",
    "in-progress": "STARTED",
}
DEFAULT_WORKLIST_STATUSES = frozenset({"requested", "received", "accepted", "ready", "in-progress"})

# FHIR code system URI ↔ DICOM Coding Scheme Designator (PS3.16 Table 8-1 subset).
CODING_SCHEMES = {
    "http://dicom.nema.org/resources/ontology/DCM": "DCM",
    "http://snomed.info/sct": "SCT",
    "http://loinc.org": "LN",
    "http://radlex.org": "RADLEX",
    "http://www.radlex.org": "RADLEX",
    "http://unitsofmeasure.org": "UCUM",
    "http://hl7.org/fhir/sid/icd-10": "I10",
}
LOCAL_SCHEME_PREFIX = "urn:fhirmwl:dicom-csd:"


@dataclass(frozen=True)
class WorklistGraph:
    """The resources one worklist item is built from; references resolve through the dicts
    (keyed by the reference string as written, e.g. ``Practitioner/12`` or ``urn:uuid:…``)."""

    task: Resource
    requested_procedure: Resource | None = None
    service_request: Resource | None = None
    patient: Resource | None = None
    encounter: Resource | None = None
    device: Resource | None = None
    other_devices: tuple[Resource, ...] = ()  # further stations (AE Title VM 1-n)
    imaging_study: Resource | None = None
    practitioners: dict[str, Resource] = field(default_factory=dict)
    locations: dict[str, Resource] = field(default_factory=dict)
    # AllergyIntolerance, Flag and Observation resources of the patient (clinical.py)
    clinical: tuple[Resource, ...] = ()

    def practitioner(self, ref: dict[str, Any] | None) -> Resource | None:
        key = (ref or {}).get("reference")
        return self.practitioners.get(key) if key else None

    def location(self, ref: dict[str, Any] | None) -> Resource | None:
        key = (ref or {}).get("reference")
        return self.locations.get(key) if key else None


@dataclass(frozen=True)
class DicomMappingContext:
    """Time zone for DA/TM rendering, worklist status policy, identifier systems, id factory."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    worklist_statuses: frozenset[str] = DEFAULT_WORKLIST_STATUSES
    systems: IdentifierSystems = field(default_factory=IdentifierSystems)
    new_uuid: Callable[[], uuid.UUID] = field(default=uuid.uuid4)
    specific_character_set: str = "ISO_IR 192"

    def full_url(self) -> str:
        return f"urn:uuid:{self.new_uuid()}"


def coding_scheme_for(system: str | None) -> str:
    if not system:
        return "99LOCAL"
    if system in CODING_SCHEMES:
        return CODING_SCHEMES[system]
    if system.startswith(LOCAL_SCHEME_PREFIX):
        return system[len(LOCAL_SCHEME_PREFIX) :]
    return "99LOCAL"


def system_for_scheme(designator: str) -> str:
    for system, scheme in CODING_SCHEMES.items():
        if scheme == designator:
            return system
    return LOCAL_SCHEME_PREFIX + designator
