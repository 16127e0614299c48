"""Profile validation of a completed order, before anything is stored.

Every issue is collected (not only the first) so that a 422 tells the RIS all that is wrong in
one round trip; errors refuse the order, warnings travel back with the result.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_bundles import PROFILE_CREATE_ORDER_BUNDLE
from fhirmwl.errors import Unprocessable
from fhirmwl.services.profiles import store_resolver
from fhirmwl.store import Tx
from fhirmwl.validation import validate, validate_bundle
from fhirmwl.validation.engine import bundle_resolver, infer_profile


def _raise_or_warn(found: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    errors = [i for i in found if i["severity"] in ("error", "fatal")]
    if errors:
        raise Unprocessable(
            f"{what} breaks the profiles ({len(errors)} error(s)): {errors[0]['diagnostics']}",
            issues=found,
        )
    return found


def validate_order(tx: Tx, order: dict[str, Any]) -> list[dict[str, Any]]:
    """The completed request against CreateOrderRequestBundle and every entry's profile."""
    issues = validate_bundle(
        order, store_resolver(tx), profiles=[PROFILE_CREATE_ORDER_BUNDLE], base=True
    )
    return _raise_or_warn([i.to_fhir() for i in issues], "the order")


def validate_entries(tx: Tx, order: dict[str, Any]) -> list[dict[str, Any]]:
    """Each changed/new resource of an update against its (claimed or implied) profile."""
    resolver = bundle_resolver(order, store_resolver(tx))
    found: list[dict[str, Any]] = []
    for i, entry in enumerate(order.get("entry") or []):
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        claimed = (res.get("meta") or {}).get("profile")
        inferred = infer_profile(res)
        profiles = list(claimed) if claimed else ([inferred] if inferred else [])
        for item in validate(res, profiles, resolver):
            fhir = item.to_fhir()
            fhir["diagnostics"] = f"Bundle.entry[{i}]: {fhir['diagnostics']}"
            found.append(fhir)
    return _raise_or_warn(found, "the update")
