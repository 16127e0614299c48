"""Wire the conformance package into the running server.

- the guide's conformance resources are served read-only (``/fhir/StructureDefinition`` …);
- ``POST /fhir/{type}/$validate`` runs the profile validator on demand;
- every create/update of a resource that claims a profile in ``meta.profile`` is validated
  according to the ``validation`` setting: ``strict`` refuses errors (422, nothing stored),
  ``lenient`` stores and returns the findings as warnings, ``off`` skips profile validation
  (the R5 structure check always runs);
- ``/metadata`` lists the supported profiles per type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fhirmwl.api import http
from fhirmwl.conformance import registry
from fhirmwl.errors import BadRequest, NotFound
from fhirmwl.fhir import model
from fhirmwl.fhir.references import split_reference
from fhirmwl.fhir.search_params import RESOURCE_TYPES
from fhirmwl.services.container import Operation, Services
from fhirmwl.services.resources import is_prevalidated
from fhirmwl.store import Tx
from fhirmwl.validation import to_operation_outcome, validate

VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


def store_resolver(tx: Tx) -> Callable[[str], dict[str, Any] | None]:
    """Resolve ``Type/id`` (relative or absolute) references against the store."""

    def resolve(reference: str) -> dict[str, Any] | None:
        target = split_reference(reference)
        if target is None or target[0] not in RESOURCE_TYPES:
            return None
        stored = tx.read(*target)
        return stored.resource() if stored and not stored.deleted else None

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


async def _validate_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> Any:
    body = await http.json_body(request)
    profile = request.query_params.get("profile")
    if body.get("resourceType") == "Parameters":
        params = body.get("parameter") or []
        resource = next((p.get("resource") for p in params if p.get("name") == "resource"), None)
        profile = next(
            (
                p.get("valueUri") or p.get("valueCanonical")
                for p in params
                if p.get("name") == "profile"
            ),
            profile,
        )
        if not isinstance(resource, dict):
            raise BadRequest("$validate Parameters need a 'resource' parameter")
        body = resource
    if rtype and body.get("resourceType") != rtype:
        raise BadRequest(f"$validate on {rtype} got a {body.get('resourceType')} resource")
    if profile and registry.get_shared("StructureDefinition", profile) is None:
        raise NotFound(f"profile {profile!r} is not known to this server")

    def run() -> dict[str, Any]:
        with services.store.read() as tx:
            issues = validate(body, [profile] if profile else None, store_resolver(tx))
        return to_operation_outcome(issues)

    return http.fhir_response(await run_in_threadpool(run))


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
    for rtype in (*RESOURCE_TYPES, "Bundle"):
        services.add_operation(
            Operation("validate", "type", rtype, _validate_op, definition=VALIDATE_DEFINITION)
        )
    services.extra["supported_profiles"] = supported_profiles()
    readonly = services.extra.setdefault("readonly_types", {})
    readonly.update({t: registry for t in registry.RESOURCE_TYPES})
    services.extra["profile_resolver"] = store_resolver
    assert model.CANON  # the registry's canonical base is the resource model's
