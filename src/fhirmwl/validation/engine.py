"""Public entry points of the profile validator.

The reference validator cannot run inside the broker, yet every create/update of a profiled
resource and every order transaction must be checked against the guide's profiles. ``validate``
checks one resource against the R5 base (via ``fhir.resources``) and against its profiles;
``validate_bundle`` checks a Bundle and each entry, resolving references inside the Bundle
first and through the caller's resolver (the store) second.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_bundles import PROFILE_CREATE_ORDER_BUNDLE, PROFILE_ORDER_BUNDLE
from fhirmwl.fhir.model import (
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
)
from fhirmwl.validation.base import check_base
from fhirmwl.validation.compiler import compiled
from fhirmwl.validation.issues import Issue
from fhirmwl.validation.slicing import Resolver
from fhirmwl.validation.walker import State, Walker

_ORDER_BUNDLES = (PROFILE_CREATE_ORDER_BUNDLE, PROFILE_ORDER_BUNDLE)
_BY_TYPE = {
    "Task": PROFILE_SPS,
    "Patient": PROFILE_PATIENT,
    "Encounter": PROFILE_VISIT,
    "Device": PROFILE_STATION,
    "ImagingStudy": PROFILE_STUDY,
}


def _profile_issues(
    resource: dict[str, Any], url: str, explicit: bool, state: State, root: str
) -> list[Issue]:
    profile = compiled(url)
    if profile is None:
        if explicit:
            return [Issue("error", "not-supported", f"Profile {url} is not known here", root)]
        return [
            Issue(
                "warning",
                "not-supported",
                f"Profile {url} in meta.profile is not known "
                "here; the resource was checked against the R5 base only",
                f"{root}.meta",
            )
        ]
    rtype = resource.get("resourceType")
    if rtype != profile.type:
        return [
            Issue(
                "error",
                "structure",
                f"Profile {profile.label}: {root}: profile constrains "
                f"{profile.type}, resource is a {rtype}",
                root,
            )
        ]
    walker = Walker(profile, state)
    walker.check_resource(resource, root)
    state.results[(id(resource), url)] = not any(i.is_error for i in walker.issues)
    return walker.issues


def _validate(
    resource: dict[str, Any],
    profiles: list[str] | None,
    state: State,
    base: bool,
    root: str | None,
) -> list[Issue]:
    root_expr = root or str(resource.get("resourceType", "Resource"))
    issues = check_base(resource, root) if base else []
    explicit = profiles is not None
    urls = profiles if profiles is not None else (resource.get("meta") or {}).get("profile", [])
    broken = [i.expression for i in issues if i.is_error and i.expression]
    for url in dict.fromkeys(urls):
        found = _profile_issues(resource, url, explicit, state, root_expr)
        issues.extend(i for i in found if not _inside(i.expression, broken))
    return issues


def _inside(expression: str | None, broken: list[str]) -> bool:
    """True when ``expression`` is at or below an element the R5 base check already refused:
    one issue per root cause, not a profile echo of a malformed element."""
    if not expression:
        return False
    return any(expression == b or expression.startswith((b + ".", b + "[")) for b in broken)


def validate(
    resource: dict[str, Any],
    profiles: list[str] | None = None,
    resolver: Resolver | None = None,
    *,
    base: bool = True,
) -> list[Issue]:
    """Issues of ``resource`` against the R5 base and ``profiles`` (default: meta.profile).

    ``resolver`` maps a reference string to the referenced resource (or None); without it,
    reference targets are checked by their literal type only.
    """
    if resource.get("resourceType") == "Bundle":
        return validate_bundle(resource, resolver, profiles=profiles, base=base)
    return _validate(resource, profiles, State(resolver), base, None)


def infer_profile(resource: dict[str, Any]) -> str | None:
    """The guide profile an unclaimed order-bundle entry is meant to have."""
    rtype = resource.get("resourceType")
    if rtype == "ServiceRequest":
        return PROFILE_RP if resource.get("basedOn") else PROFILE_ISR
    return _BY_TYPE.get(str(rtype))


def bundle_resolver(bundle: dict[str, Any], fallback: Resolver | None) -> Resolver:
    """Resolve by entry fullUrl or ``Type/id`` inside the Bundle, then through ``fallback``."""
    local: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        if entry.get("fullUrl"):
            local[entry["fullUrl"]] = res
        if res.get("id"):
            local[f"{res.get('resourceType')}/{res['id']}"] = res

    def resolve(reference: str) -> dict[str, Any] | None:
        found = local.get(reference)
        if found is None and "/" in reference and not reference.startswith("urn:"):
            found = local.get("/".join(reference.rstrip("/").split("/")[-2:]))
        if found is None and fallback is not None:
            found = fallback(reference)
        return found

    return resolve


def validate_bundle(
    bundle: dict[str, Any],
    resolver: Resolver | None = None,
    *,
    profiles: list[str] | None = None,
    base: bool = True,
) -> list[Issue]:
    """Validate a Bundle, its claimed profiles and every entry against its claimed profile.

    Entries of an order Bundle (CreateOrderRequestBundle / OrderBundle) that claim no profile
    are validated against the profile their resource type implies (``infer_profile``).
    """
    state = State(bundle_resolver(bundle, resolver))
    claimed = profiles if profiles is not None else (bundle.get("meta") or {}).get("profile", [])
    order_bundle = any(url in _ORDER_BUNDLES for url in claimed)
    issues = check_base(bundle) if base else []
    broken = [i.expression for i in issues if i.is_error and i.expression]
    found: list[Issue] = []
    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        entry_profiles = (res.get("meta") or {}).get("profile")
        if not entry_profiles and order_bundle:
            inferred = infer_profile(res)
            entry_profiles = [inferred] if inferred else None
        if entry_profiles:
            root = f"Bundle.entry[{i}].resource"
            found.extend(_validate(res, list(entry_profiles), state, False, root))
    found.extend(_validate(bundle, list(claimed), state, False, "Bundle"))
    return issues + [i for i in found if not _inside(i.expression, broken)]
