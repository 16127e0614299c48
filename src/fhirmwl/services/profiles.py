"""Wire the conformance package into the running server.

- the guide's conformance resources are served read-only (``/fhir/StructureDefinition`` …);
- ``POST /fhir/{type}/$validate`` runs the profile validator on demand (``api.ops_validate``);
- every create/update of a resource that claims a profile in ``meta.profile`` is validated
  according to the ``validation`` setting: ``strict`` refuses errors (422, nothing stored),
  ``lenient`` stores and returns the findings as warnings, ``off`` skips profile validation
  (the R5 structure check always runs);
- ``/metadata`` lists the supported profiles per type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirmwl.conformance import registry
from fhirmwl.fhir import model
from fhirmwl.fhir.references import split_reference
from fhirmwl.fhir.search_params import RESOURCE_TYPES
from fhirmwl.services.container import Services
from fhirmwl.services.resources import is_prevalidated
from fhirmwl.store import Tx
from fhirmwl.validation import validate


def store_resolver(tx: Tx) -> Callable[[str], dict[str, Any] | None]:
    """Resolve ``Type/id`` (relative or absolute) references against the store. One resolver
    serves one validation (a resource does not change while it is validated), so each target
    is read once: slice discriminators and the reference check ask for the same ones."""
    seen: dict[tuple[str, str], dict[str, Any] | None] = {}

    def resolve(reference: str) -> dict[str, Any] | None:
        target = split_reference(reference)
        if target is None or target[0] not in RESOURCE_TYPES:
            return None
        if target not in seen:
            stored = tx.read(*target)
            seen[target] = stored.resource() if stored and not stored.deleted else None
        found = seen[target]
        return dict(found) if found is not None else None

    return resolve


def _profile_validator(mode: str) -> Callable[[Tx, str, dict[str, Any]], list[dict[str, Any]]]:
    def check(tx: Tx, resource_type: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
        if is_prevalidated() or not (resource.get("meta") or {}).get("profile"):
            return []  # nothing claimed, or validated already as part of an order Bundle
        issues = validate(resource, None, store_resolver(tx), base=False)
        found = [i.to_fhir() for i in issues]
        if mode == "lenient":
            for item in found:
                if item["severity"] in ("error", "fatal"):
                    item["severity"] = "warning"
        return found

    return check


def supported_profiles() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sd in registry.search("StructureDefinition"):
        if sd.get("kind") == "resource" and sd.get("derivation") == "constraint":
            out.setdefault(sd["type"], []).append(sd["url"])
    return out


def install(services: Services) -> None:
    mode = services.settings.validation
    if mode != "off":
        services.resources.validators.append(_profile_validator(mode))
    services.supported_profiles = supported_profiles()
    services.readonly_types.update({t: registry for t in registry.RESOURCE_TYPES})
    assert model.CANON  # the registry's canonical base is the resource model's
