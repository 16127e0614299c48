"""The two order Bundle profiles, which the draft guide leaves empty (I-4).

``CreateOrderRequestBundle`` is the ``order`` input of ``$create-order`` / ``$update-order``: a
transaction with exactly one Imaging Service Request and at least one Requested Procedure.
``OrderBundle`` is what the operations return: the persisted order graph.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import canonical, constraint, el, slicing, structure_definition
from fhirmwl.fhir.model import (
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
)

PROFILE_CREATE_ORDER_BUNDLE = canonical("StructureDefinition", "create-order-request-bundle")
PROFILE_ORDER_BUNDLE = canonical("StructureDefinition", "order-bundle")

# (slice name, resource type, profile, min, max) for the request / the response.
_REQUEST_SLICES = [
    ("imagingServiceRequest", "ServiceRequest", PROFILE_ISR, 1, "1"),
    ("requestedProcedure", "ServiceRequest", PROFILE_RP, 1, "*"),
    ("scheduledProcedureStep", "Task", PROFILE_SPS, 0, "*"),
    ("patient", "Patient", PROFILE_PATIENT, 0, "1"),
    ("visit", "Encounter", PROFILE_VISIT, 0, "1"),
    ("scheduledStation", "Device", PROFILE_STATION, 0, "*"),
    ("imagingStudy", "ImagingStudy", PROFILE_STUDY, 0, "*"),
]
_RESPONSE_SLICES = [
    (name, rtype, prof, 1 if name == "scheduledProcedureStep" else mn, mx)
    for name, rtype, prof, mn, mx in _REQUEST_SLICES
]


def _entry_slices(spec: list[tuple[str, str, str, int, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, rtype, profile, mn, mx in spec:
        out.append(el(f"Bundle.entry:{name}", min=mn, max=mx))
        out.append(
            el(
                f"Bundle.entry:{name}.resource",
                min=1,
                type=[{"code": rtype, "profile": [profile]}],
            )
        )
    return out


def create_order_request_bundle() -> dict[str, Any]:
    full_urls = constraint(
        "cob-1",
        "Every entry has a fullUrl so that the order graph can reference it",
        "fullUrl.exists()",
    )
    return structure_definition(
        "create-order-request-bundle",
        "CreateOrderRequestBundle",
        "Create Order Request Bundle",
        "Bundle",
        "Input of $create-order and $update-order: a transaction holding one order graph.",
        [
            el("Bundle.type", fixedCode="transaction"),
            el(
                "Bundle.entry",
                min=2,
                slicing=slicing("profile", "resource"),
                constraint=[full_urls],
            ),
            el("Bundle.entry.request", min=1),
            *_entry_slices(_REQUEST_SLICES),
        ],
    )


def order_bundle() -> dict[str, Any]:
    kind = constraint(
        "ob-1",
        "An order bundle is a transaction-response or a collection",
        "type = 'transaction-response' or type = 'collection'",
    )
    return structure_definition(
        "order-bundle",
        "OrderBundle",
        "Order Bundle",
        "Bundle",
        "Output of the order operations: the persisted order graph with server-assigned ids.",
        [
            el("Bundle", constraint=[kind]),
            el("Bundle.entry", min=3, slicing=slicing("profile", "resource")),
            *_entry_slices(_RESPONSE_SLICES),
        ],
    )


def bundle_profiles() -> list[dict[str, Any]]:
    return [create_order_request_bundle(), order_bundle()]
