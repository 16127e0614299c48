"""``$validate`` (``POST /fhir/{type}/$validate``): the profile validator on demand.

The HTTP half of ``services.profiles``: it reads the request (a resource, or Parameters with
``resource`` and ``profile``) and answers an OperationOutcome; the validation itself and the
store resolver live in the service layer.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fhirmwl.api import http
from fhirmwl.conformance import registry
from fhirmwl.errors import BadRequest, NotFound
from fhirmwl.fhir.search_params import RESOURCE_TYPES
from fhirmwl.services.container import Operation, Services
from fhirmwl.services.profiles import store_resolver
from fhirmwl.validation import to_operation_outcome, validate

VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


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


def install(services: Services) -> None:
    for rtype in (*RESOURCE_TYPES, "Bundle"):
        services.add_operation(
            Operation("validate", "type", rtype, _validate_op, definition=VALIDATE_DEFINITION)
        )
