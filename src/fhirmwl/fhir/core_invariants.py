"""A few FHIR R5 core invariants, checked on every write by ``fhir.base_rules``.

The ``fhir.resources`` models carry no invariants. These are the core ones that need nothing
but the element itself (no ``resolve()``, no terminology) and that the broker's resource types
meet in practice: data-type rules (``per-1``, ``ref-2``, ``cpt-2``, ``qty-3``, ``att-1``), the
contained-resource rules of DomainResource (``dom-2``, ``dom-4``, ``dom-5``), ``pat-1`` and
``prr-1``. Each keeps its FHIRPath expression (shown in the message) but is evaluated in Python:
fhirpathpy takes about 170 µs per evaluation and a resource holds dozens of References, while
the base rules must stay well under the model check's ~1 ms. A unit test evaluates every
expression with fhirpathpy on sample elements and checks that the Python form agrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirmwl.fhir.dates import date_range

Node = dict[str, Any]


@dataclass(frozen=True)
class CoreInvariant:
    key: str
    human: str
    expression: str
    holds: Callable[[Node], bool]


def _has(node: Node, key: str) -> bool:
    return node.get(key) not in (None, [], "")


def _period_ordered(node: Node) -> bool:
    start, end = node.get("start"), node.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    try:
        return date_range(start)[0] <= date_range(end)[1]
    except ValueError:
        return True  # a malformed date is reported by the model check


def _contained(node: Node) -> list[Node]:
    return [c for c in node.get("contained") or [] if isinstance(c, dict)]


CORE: dict[str, tuple[CoreInvariant, ...]] = {
    "Period": (
        CoreInvariant(
            "per-1",
            "If present, start SHALL have a lower or equal value than end",
            "start.hasValue().not() or end.hasValue().not() or "
            "(start.lowBoundary() <= end.highBoundary())",
            _period_ordered,
        ),
    ),
    "Reference": (
        CoreInvariant(
            "ref-2",
            "At least one of reference, identifier and display SHALL be present (unless an "
            "extension is provided)",
            "reference.exists() or identifier.exists() or display.exists() or extension.exists()",
            lambda n: any(_has(n, k) for k in ("reference", "identifier", "display", "extension")),
        ),
    ),
    "ContactPoint": (
        CoreInvariant(
            "cpt-2",
            "A system is required if a value is provided",
            "value.empty() or system.exists()",
            lambda n: not _has(n, "value") or _has(n, "system"),
        ),
    ),
    "Quantity": (
        CoreInvariant(
            "qty-3",
            "If a code for the unit is present, the system SHALL also be present",
            "code.empty() or system.exists()",
            lambda n: not _has(n, "code") or _has(n, "system"),
        ),
    ),
    "Attachment": (
        CoreInvariant(
            "att-1",
            "If the Attachment has data, it SHALL have a contentType",
            "data.empty() or contentType.exists()",
            lambda n: not _has(n, "data") or _has(n, "contentType"),
        ),
    ),
    "PatientContact": (
        CoreInvariant(
            "pat-1",
            "SHALL at least contain a contact's details or a reference to an organization",
            "name.exists() or telecom.exists() or address.exists() or organization.exists()",
            lambda n: any(_has(n, k) for k in ("name", "telecom", "address", "organization")),
        ),
    ),
    "ServiceRequest": (
        CoreInvariant(
            "prr-1",
            "orderDetail SHALL only be present if code is present",
            "orderDetail.empty() or code.exists()",
            lambda n: not _has(n, "orderDetail") or _has(n, "code"),
        ),
    ),
}
DOMAIN_RESOURCE: tuple[CoreInvariant, ...] = (
    CoreInvariant(
        "dom-2",
        "If the resource is contained in another resource, it SHALL NOT contain nested Resources",
        "contained.contained.empty()",
        lambda n: not any(_has(c, "contained") for c in _contained(n)),
    ),
    CoreInvariant(
        "dom-4",
        "If a resource is contained in another resource, it SHALL NOT have a meta.versionId or "
        "a meta.lastUpdated",
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        lambda n: (
            not any(
                _has(c.get("meta") or {}, "versionId") or _has(c.get("meta") or {}, "lastUpdated")
                for c in _contained(n)
            )
        ),
    ),
    CoreInvariant(
        "dom-5",
        "If a resource is contained in another resource, it SHALL NOT have a security label",
        "contained.meta.security.empty()",
        lambda n: not any(_has(c.get("meta") or {}, "security") for c in _contained(n)),
    ),
)


def invariants_for(model_name: str, node: Node) -> tuple[CoreInvariant, ...]:
    found = CORE.get(model_name, ())
    if "contained" in node and "resourceType" in node:
        found = found + DOMAIN_RESOURCE
    return found
