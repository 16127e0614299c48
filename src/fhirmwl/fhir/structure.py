"""Structural validation of R5 resources with the ``fhir.resources`` models.

We use the library (pydantic models generated from the R5 definitions) rather than our own
schema: it knows every element, datatype and choice type. Its errors are turned into
OperationOutcome issues whose ``expression`` is a FHIRPath-style location.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from fhirmwl.errors import Unprocessable
from fhirmwl.fhir.outcome import issue


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    from fhir.resources import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _expression(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-") and "[" not in part:
            path += f".{part}"
    return path


def structure_issues(resource_type: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Issues of one resource; identical content is checked once (order messages re-send the
    same Patient, Practitioner and station Device again and again)."""
    try:
        key = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _structure_issues(resource_type, resource)
    return [dict(i) for i in _cached_issues(resource_type, key)]


@lru_cache(maxsize=4096)
def _cached_issues(resource_type: str, key: bytes) -> tuple[dict[str, Any], ...]:
    return tuple(_structure_issues(resource_type, orjson.loads(key)))


def _structure_issues(resource_type: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        _model(resource_type).model_validate(resource)
    except ValidationError as exc:
        return [
            issue(
                "error",
                "structure",
                f"{resource_type}: {err['msg']} at {_expression(resource_type, err['loc'])}",
                _expression(resource_type, err["loc"]),
            )
            for err in exc.errors()
        ]
    except (KeyError, ValueError, TypeError) as exc:
        return [issue("error", "structure", f"{resource_type}: {exc}")]
    return []


def check_structure(resource_type: str, resource: dict[str, Any]) -> None:
    """Raise 422 with every structural problem of the resource."""
    if resource.get("resourceType") != resource_type:
        raise Unprocessable(
            f"resourceType is {resource.get('resourceType')!r}, expected {resource_type!r}",
            expression="resourceType",
        )
    problems = structure_issues(resource_type, resource)
    if problems:
        raise Unprocessable(problems[0]["diagnostics"], issues=problems)
