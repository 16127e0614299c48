"""Checks against the R5 base definition, delegated to the ``fhir.resources`` models.

The reference validator cannot run here; the pydantic models of ``fhir.resources`` know every
R5 element, its data type and the primitive regexes, which is what we need for the data-type
checks (unknown elements, malformed dates, wrong JSON types). It takes about 0.2 ms a resource.
"""

from __future__ import annotations

from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from fhirmwl.validation.issues import Issue

_BASE = "FHIR R5 base definition"


def _expression(root: str, loc: tuple[Any, ...]) -> str:
    expr = root
    for part in loc:
        if isinstance(part, int):
            expr += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "").isalnum():
            expr += f".{part}"
    return expr


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        return "unknown element (not defined in R5)"
    if "input" in error and not isinstance(error["input"], dict | list):
        msg += f"; found {error['input']!r}"
    return " ".join(msg.split())


def check_base(resource: dict[str, Any], root_expr: str | None = None) -> list[Issue]:
    """Data-type and structure issues of ``resource`` against its R5 resource type."""
    rtype = resource.get("resourceType")
    root = root_expr or str(rtype)
    try:
        model = get_fhir_model_class(str(rtype))
    except (KeyError, ValueError):
        return [Issue("error", "structure", f"{_BASE}: unknown resourceType {rtype!r}", root)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            expr = _expression(root, tuple(error.get("loc", ())))
            code = "structure" if error.get("type") == "extra_forbidden" else "value"
            text = _message(dict(error))
            issues.append(Issue("error", code, f"{_BASE}: {expr}: {text}", expr))
        return issues
    return []
