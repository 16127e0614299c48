"""``GET /metadata``: a CapabilityStatement generated from the code's own registries.

Types and search parameters come from ``fhir.search_params``, operations from the registered
handlers, profiles from the conformance package when it is installed. Nothing is written by hand,
so the statement cannot claim what the server does not do.
"""

from __future__ import annotations

from typing import Any

from fhirmwl import __version__
from fhirmwl.fhir.search_params import RESOURCE_TYPES, SEARCH_PARAMS
from fhirmwl.services.container import Services

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def _resource_entry(services: Services, rtype: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": c} for c in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalDelete": "multiple",
        "searchInclude": [
            f"{rtype}:{p.name}" for p in SEARCH_PARAMS[rtype].values() if p.type == "reference"
        ],
        "searchRevInclude": sorted(
            {
                f"{src}:{p.name}"
                for src, ps in SEARCH_PARAMS.items()
                for p in ps.values()
                if rtype in p.targets
            }
        ),
        "searchParam": [
            {"name": "_id", "type": "token"},
            {"name": "_lastUpdated", "type": "date"},
            *(
                {"name": p.name, "type": p.type, "definition": p.url}
                for p in SEARCH_PARAMS[rtype].values()
            ),
        ],
    }
    profiles = services.supported_profiles.get(rtype)
    if profiles:
        entry["supportedProfile"] = profiles
    ops = [
        op
        for op in services.operations.values()
        if op.resource_type == rtype and op.level in ("type", "instance")
    ]
    if ops:
        entry["operation"] = [_op(o) for o in ops]
    return entry


_STRING_PARAMS = ("name", "title")


def _readonly_entry(services: Services, rtype: str, source: Any) -> dict[str, Any]:
    """A type served read-only from a registry (the one ``api.app`` routes to)."""
    names = getattr(source, "search_param_names", ("_id",))
    types: dict[str, str] = getattr(source, "search_param_types", {})
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": n,
                "type": types.get(n)
                or ("uri" if n == "url" else "string" if n in _STRING_PARAMS else "token"),
            }
            for n in names
        ],
    }
    ops = [o for o in services.operations.values() if o.resource_type == rtype]
    if ops:
        entry["operation"] = [_op(o) for o in ops]
    return entry


def served_types(services: Services) -> dict[str, Any]:
    """Every type the API routes: store-backed types (None) and read-only registries."""
    readonly = services.readonly_types
    return {**{t: None for t in RESOURCE_TYPES}, **dict(sorted(readonly.items()))}


def _op(op: Any) -> dict[str, Any]:
    return {"name": op.name, "definition": op.definition or f"urn:fhirmwl:operation:{op.name}"}


def capability_statement(services: Services) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "kind": "instance",
        "software": {"name": "fhirmwl", "version": __version__},
        "implementation": {
            "description": "fhirmwl imaging order broker",
            "url": services.settings.fhir_base,
        },
        "fhirVersion": "5.0.0",
        "format": ["json", "xml"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    _resource_entry(services, t)
                    if source is None
                    else _readonly_entry(services, t, source)
                    for t, source in served_types(services).items()
                ],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
                "operation": [_op(o) for o in services.operations.values() if o.level == "system"],
                **(
                    {"security": services.rest_security}
                    if services.rest_security is not None
                    else {}
                ),
            }
        ],
    }
