"""The two views of the broker the guide asks for (designdecisions: "view from RIS", "view from
PACS"; I-3, I-23): what an Order Placer and what an Image Manager may do over FHIR.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import canonical, meta
from fhirmwl.fhir.model import (
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
)

DATE = "2025-06-20"
_SP = "http://hl7.org/fhir/SearchParameter"

# Task search parameters both sides use: (name, type, definition)
_TASK_SEARCH = [
    ("identifier", "token", f"{_SP}/Task-identifier"),
    ("status", "token", f"{_SP}/Task-status"),
    ("patient", "reference", f"{_SP}/Task-patient"),
    ("based-on", "reference", f"{_SP}/Task-based-on"),
    ("requested-period", "date", canonical("SearchParameter", "requested-period")),
    ("modality", "token", canonical("SearchParameter", "modality")),
    ("station-aet", "token", canonical("SearchParameter", "station-aet")),
]


def _res(rtype: str, profiles: list[str], interactions: list[str], **extra: Any):
    out: dict[str, Any] = {"type": rtype}
    if profiles:
        out["supportedProfile"] = profiles
    out["interaction"] = [{"code": code} for code in interactions]
    if "search-type" in interactions:
        out["searchInclude"] = ["*"]
        out["searchRevInclude"] = ["*"]
    out.update(extra)
    return out


def _ops(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "definition": canonical("OperationDefinition", n)} for n in names]


def _search(params: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "type": t, "definition": d} for n, t, d in params]


def _capability(rid: str, name: str, title: str, desc: str, rest: dict[str, Any]):
    cs = meta("CapabilityStatement", rid, name, title, desc)
    cs.update(
        {
            "date": DATE,
            "kind": "capability",
            "software": {"name": "fhirmwl"},
            "fhirVersion": "5.0.0",
            "format": ["json"],
            "rest": [rest],
        }
    )
    return cs


def order_placer_view() -> dict[str, Any]:
    rw = ["read", "vread", "search-type"]
    rest = {
        "mode": "server",
        "documentation": "What an Order Placer (RIS) may do: place, change and cancel orders.",
        "resource": [
            _res(
                "ServiceRequest",
                [PROFILE_ISR, PROFILE_RP],
                rw,
                operation=_ops("cancel-order", "update-order"),
            ),
            _res("Task", [PROFILE_SPS], rw, searchParam=_search(_TASK_SEARCH)),
            _res("Patient", [PROFILE_PATIENT], [*rw, "create", "update"]),
            _res("Encounter", [PROFILE_VISIT], [*rw, "create", "update"]),
            _res("Device", [PROFILE_STATION], rw),
            _res("ImagingStudy", [PROFILE_STUDY], rw),
            _res("Practitioner", [], rw),
        ],
        "interaction": [{"code": "transaction"}],
        "operation": _ops("create-order"),
    }
    return _capability(
        "order-placer",
        "OrderPlacerCapabilityStatement",
        "Imaging order broker: Order Placer (RIS) view",
        "The FHIR interface the broker offers to ordering systems (ContextDiagram: RIS side).",
        rest,
    )


def image_manager_view() -> dict[str, Any]:
    rw = ["read", "vread", "search-type"]
    rest = {
        "mode": "server",
        "documentation": "What an Image Manager (PACS) may do: read the worklist and the "
        "order context, and report step and study status.",
        "resource": [
            _res(
                "Task",
                [PROFILE_SPS],
                [*rw, "update", "patch"],
                searchParam=_search(_TASK_SEARCH),
                operation=_ops("mwl-query"),
            ),
            _res("ImagingStudy", [PROFILE_STUDY], [*rw, "update"]),
            _res("ServiceRequest", [PROFILE_ISR, PROFILE_RP], rw),
            _res("Patient", [PROFILE_PATIENT], rw),
            _res("Encounter", [PROFILE_VISIT], rw),
            _res("Device", [PROFILE_STATION], rw),
        ],
    }
    return _capability(
        "image-manager",
        "ImageManagerCapabilityStatement",
        "Imaging order broker: Image Manager (PACS) view",
        "The FHIR interface the broker offers to archives (ContextDiagram: PACS side).",
        rest,
    )


def capability_statements() -> list[dict[str, Any]]:
    return [order_placer_view(), image_manager_view()]
