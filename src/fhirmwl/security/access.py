"""What a FHIR or DICOMweb request needs: HTTP method + path + parameters → scope ``Need`` s.

Pure, like ``scopes``: the middleware hands in the parsed request and applies the answer. The
interaction table follows SMART App Launch v2 (``c`` create, ``r`` read/vread/history, ``u``
update, ``d`` delete, ``s`` search); operations have a table of their own (``OPERATION_NEEDS``,
the same table as docs/auth.md). A transaction or batch needs what each of its entries needs.
``_include``/``_revinclude`` need read on the resource types they pull into the answer, so a
``Task.rs`` token cannot read Patients through ``Task?_include=Task:patient``; chained
parameters and ``_has`` need search on the types they filter by, so it cannot probe Patient
names through ``Task?patient.name=…`` either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fhirmwl.errors import BadRequest, FhirMwlError
from fhirmwl.fhir.search_params import SEARCH_PARAMS
from fhirmwl.security.scopes import EXPLICIT_PERMISSIONS, EXPLICIT_TYPES, PERMISSIONS, Need

# operation name → (resource type, permission); None = the type the operation is invoked on.
OPERATION_NEEDS: dict[str, tuple[tuple[str | None, str], ...]] = {
    # the order Bundle writes (or finds) all of these; the Device is the catalogue's station
    "create-order": tuple(
        (t, "c") for t in ("ServiceRequest", "Task", "ImagingStudy", "Patient", "Encounter")
    ),
    "update-order": (("ServiceRequest", "u"), ("Task", "u")),
    "cancel-order": (("ServiceRequest", "u"), ("Task", "u")),
    "mwl-query": (("Task", "s"),),
    "status": (("Subscription", "r"),),
    "events": (("Subscription", "r"),),
    "validate": ((None, "r"),),
}
# Public without a token (they describe the security itself).
PUBLIC_FHIR = (("GET", ("metadata",)), ("HEAD", ("metadata",)))


class Unauthorized(FhirMwlError):
    http_status = 401
    issue_code = "login"


class Forbidden(FhirMwlError):
    http_status = 403
    issue_code = "forbidden"


@dataclass
class Access:
    needs: list[Need] = field(default_factory=list)
    kind: str = "other"  # public | search | read | other
    resource_type: str | None = None
    res_id: str | None = None
    includes: bool = False  # _include / _revinclude present


def _need(rtype: str, perm: str) -> Need:
    return Need(rtype, perm, explicit=rtype in EXPLICIT_TYPES and perm in EXPLICIT_PERMISSIONS)


def _include_needs(params: Sequence[tuple[str, str]]) -> list[Need]:
    needs: list[Need] = []
    for key, value in params:
        name = key.split(":")[0]
        if name not in ("_include", "_revinclude"):
            continue
        src, _, rest = value.partition(":")
        param, _, target = rest.partition(":")
        if name == "_revinclude":
            needs.append(_need(src or "*", "r"))
        elif target:
            needs.append(_need(target, "r"))
        elif param in SEARCH_PARAMS.get(src, {}):
            needs += [_need(t, "r") for t in SEARCH_PARAMS[src][param].targets or ("*",)]
        else:
            needs.append(_need("*", "r"))
    return needs


def _chain_needs(rtype: str, params: Sequence[tuple[str, str]]) -> list[Need]:
    """Chains (``patient.name=``) and ``_has`` filter on other types: they need ``s`` there."""
    needs: list[Need] = []
    for key, _ in params:
        parts = key.split(":")
        while len(parts) >= 3 and parts[0] == "_has":  # _has:Type:param[:_has:…]:rest
            needs.append(_need(parts[1], "s"))
            parts = parts[3:]
        hops = key.split(".")[:-1] if not key.startswith("_has:") else []
        types = [rtype]
        for hop in hops:
            param, _, target = hop.partition(":")
            if target:
                types = [target]
            else:
                found = [SEARCH_PARAMS.get(t, {}).get(param) for t in types]
                types = sorted({x for p in found if p for x in p.targets}) or ["*"]
            needs += [_need(t, "s") for t in types]
    return needs


def _operation(parts: Sequence[str], method: str) -> Access:
    name = parts[-1][1:]
    rtype = parts[0] if len(parts) > 1 else None
    table = OPERATION_NEEDS.get(name)
    if table is None:  # unknown to this table: ask for everything on its type
        needs = [_need(rtype or "*", p) for p in PERMISSIONS]
    else:
        needs = [_need(t or rtype or "*", p) for t, p in table]
    res_id = parts[1] if len(parts) == 3 else None
    return Access(needs, "other", rtype, res_id)


def classify(
    method: str,
    parts: Sequence[str],
    params: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Access:
    """Needs of ``METHOD /fhir/<parts>?<params>`` (``body`` only for a Bundle at the base)."""
    method = "GET" if method == "HEAD" else method
    headers = headers or {}
    if (method, tuple(parts)) in PUBLIC_FHIR:
        return Access(kind="public")
    if not parts:
        return _bundle(body) if method == "POST" else Access([_need("*", "r")])
    if parts[-1].startswith("$"):
        return _operation(parts, method)
    if parts == ["_history"]:
        return Access([_need("*", "r")])
    rtype, rest = parts[0], list(parts[1:])
    includes = _include_needs(params)
    if not rest or rest == ["_search"]:
        if method == "GET" or rest == ["_search"]:
            needs = [_need(rtype, "s"), *includes, *_chain_needs(rtype, params)]
            return Access(needs, "search", rtype, None, bool(includes))
        perms = {"POST": "c", "PUT": "usc", "DELETE": "ds"}.get(method, "")
        if method == "POST" and headers.get("if-none-exist"):
            perms += "s"
        return Access([_need(rtype, p) for p in perms or "cruds"], "other", rtype)
    if len(rest) == 1 and rest != ["_history"]:
        perm = {"GET": "r", "PUT": "u", "PATCH": "u", "DELETE": "d"}.get(method, "")
        kind = "read" if perm == "r" else "other"
        return Access([_need(rtype, p) for p in perm or "cruds"], kind, rtype, rest[0])
    return Access([_need(rtype, "r")], "other", rtype, rest[0] if rest[0] != "_history" else None)


def _bundle(body: dict[str, Any] | None) -> Access:
    if not isinstance(body, dict):
        return Access([], "other")  # the API answers 400/415 for a missing or bad body
    needs: list[Need] = []
    for i, entry in enumerate(body.get("entry") or []):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("url"), str):
            continue  # the bundle processor reports the malformed entry
        path, _, query = request["url"].lstrip("/").partition("?")
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise BadRequest(
                "a Bundle entry cannot target the base URL", expression=f"Bundle.entry[{i}]"
            )
        headers = {"if-none-exist": request.get("ifNoneExist") or ""}
        method = str(request.get("method", "")).upper()
        needs += classify(method, parts, parse_qsl(query), headers).needs
    return Access(needs, "bundle")


def dicomweb_access() -> Access:
    """MWL-RS and UPS-RS searches return the worklist: scheduled steps are Tasks."""
    return Access([_need("Task", "s")], "other", "Task")


@dataclass(frozen=True)
class Confinement:
    """How a request allowed only by ``patient/`` scopes is kept in the patient's compartment."""

    param: tuple[str, str] | None = None  # one more (ANDed) search parameter
    element: str | None = None  # the read resource's reference element that must name…
    reference: str = ""  # …this patient


def patient_filter(access: Access, patient: str | None) -> Confinement | None:
    """Confine a request allowed only by ``patient/`` scopes to the token's ``patient``.

    Searches get the patient as one more (ANDed) parameter; a read is allowed for the patient's
    own Patient resource, and for a resource of a type with a ``patient`` search parameter when
    the element behind that parameter names the patient (checked on the answer). Everything else
    (history, writes, operations, bundles, ``_include``/``_revinclude``) is refused:
    docs/auth.md lists exactly this.
    """
    if not patient:
        raise Forbidden("patient/ scopes need a patient claim in the access token")
    rtype = access.resource_type or ""
    param = SEARCH_PARAMS.get(rtype, {}).get("patient")
    if access.kind == "search" and not access.includes and rtype:
        if rtype == "Patient":
            return Confinement(param=("_id", patient))
        if param is not None:
            return Confinement(param=("patient", f"Patient/{patient}"))
        raise Forbidden(f"{rtype} has no patient compartment; patient/ scopes cannot search it")
    if access.kind == "read" and rtype == "Patient" and access.res_id == patient:
        return None
    if access.kind == "read" and param is not None and rtype != "Patient":
        element = param.paths[0].split("[")[0]
        return Confinement(element=element, reference=f"Patient/{patient}")
    raise Forbidden(
        "patient/ scopes allow searches and reads in the patient's compartment only; use a user/ "
        "or system/ scope for this request"
    )


def names_patient(resource: Any, element: str, reference: str) -> bool:
    """Does ``resource.<element>`` (a Reference) point at ``reference``?"""
    node = resource
    for name in element.split("."):
        node = node.get(name) if isinstance(node, dict) else None
    return isinstance(node, dict) and node.get("reference") == reference
