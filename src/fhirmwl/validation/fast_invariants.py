"""Python forms of the guide's profile invariants, so a write does not run FHIRPath for them.

Why: every order write validates each profiled resource, and fhirpathpy takes 100–200 µs per
evaluation — the invariants of an order graph (``isr-1``, ``rp-1``, ``sps-1``/``-2``,
``ipat-1``, ``study-1``/``-2``, ``aet-1``; ``cob-1``, ``ob-1`` of the order Bundles) were about
a tenth of an HL7 v2 order's CPU. Each form here answers for exactly one expression text (so a
changed expression falls back to FHIRPath by itself) and returns the list fhirpathpy would
return, or ``None`` for a value it does not handle (a non-string, a primitive extension, a line
break) — then FHIRPath decides. A unit test evaluates every expression with fhirpathpy on valid
and invalid samples and checks that both agree (tests/unit/conformance/test_fast_invariants.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Fast = Callable[[Any], list[bool] | None]

_OID = re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")
_SR_REF = re.compile(r"(^|/)ServiceRequest/[A-Za-z0-9\-\.]{1,64}(/_history/.*)?$")


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and "\n" not in value and "\r" not in value else None


def _max_length(limit: int) -> Fast:
    def check(value: Any) -> list[bool] | None:
        text = _string(value)
        return None if text is None else [len(text) <= limit]

    return check


def _aet(value: Any) -> list[bool] | None:
    text = _string(value)
    return None if text is None else [len(text) <= 16 and "\\" not in text]


def _oid(value: Any) -> list[bool] | None:
    text = _string(value)
    return None if text is None else [bool(_OID.search(text)) and len(text) <= 72]


def _children(value: Any, name: str) -> list[Any] | None:
    """The element's ``name`` children as a list, or None when not a plain JSON shape."""
    if not isinstance(value, dict) or f"_{name}" in value:
        return None
    child = value.get(name)
    items = child if isinstance(child, list) else [] if child is None else [child]
    return items if all(isinstance(i, dict) for i in items) else None


def _identifier_value(value: Any) -> list[bool] | None:
    idents = _children(value, "identifier")
    if idents is None or any("_value" in i for i in idents):
        return None
    return [any(i.get("value") is not None for i in idents)]


def _start(value: Any) -> list[bool] | None:
    if not isinstance(value, dict) or "_start" in value:
        return None
    return [value.get("start") is not None]


def _based_on_service_request(value: Any) -> list[bool] | None:
    refs = _children(value, "basedOn")
    if refs is None:
        return None
    for ref in refs:
        kind, target = ref.get("type"), ref.get("reference")
        if "_type" in ref or "_reference" in ref:
            return None
        if not isinstance(kind, str | None) or not (target is None or _string(target)):
            return None
        if kind == "ServiceRequest" or (
            target is not None and (target.startswith("urn:") or _SR_REF.search(target))
        ):
            return [True]
    return [False]


def _full_url(value: Any) -> list[bool] | None:
    if not isinstance(value, dict) or "_fullUrl" in value:
        return None
    return [value.get("fullUrl") is not None]


def _response_or_collection(value: Any) -> list[bool] | None:
    if not isinstance(value, dict) or "_type" in value:
        return None
    kind = value.get("type")
    if kind is None:
        return []  # empty = 'x' is empty; empty or empty is empty
    return [kind in ("transaction-response", "collection")] if isinstance(kind, str) else None


FAST: dict[str, Fast] = {
    "fullUrl.exists()": _full_url,
    "type = 'transaction-response' or type = 'collection'": _response_or_collection,
    "length() <= 16": _max_length(16),
    "length() <= 16 and contains('\\\\').not()": _aet,
    "matches('^urn:oid:[0-2](\\\\.(0|[1-9][0-9]*))+$') and length() <= 72": _oid,
    "identifier.value.exists()": _identifier_value,
    "start.exists()": _start,
    "basedOn.where(type = 'ServiceRequest' or reference.startsWith('urn:') or "
    "reference.matches('(^|/)ServiceRequest/[A-Za-z0-9\\\\-\\\\.]{1,64}(/_history/.*)?$'))"
    ".exists()": _based_on_service_request,
}


def with_fast_path(expression: str, compiled: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """``compiled`` (fhirpathpy) behind the Python form of ``expression`` when there is one."""
    fast = FAST.get(expression)
    if fast is None:
        return compiled

    def evaluate(value: Any) -> list[Any]:
        answer = fast(value)
        return compiled(value) if answer is None else answer

    return evaluate
