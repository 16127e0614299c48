"""Structural validation of R5 resources: the ``fhir.resources`` models plus the base rules.

We use the library (pydantic models generated from the R5 definitions) rather than our own
schema: it knows every element, datatype and choice type. ``fhir.base_rules`` adds what the
models let through (ele-1, required code bindings, id length, JSON types of primitives). Both
kinds of finding leave here in FHIR wording — never pydantic's — with a FHIRPath ``expression``
to the element, one issue per element. The write path (``check_structure``) and ``$validate``
(``validation.base``) share this module, so they report the same issues. A resource that
``fhir.model_shape.plainly_valid`` proves clean skips both passes (most writes): the model runs
only where it may find something, and then words every finding as before.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from fhirmwl.errors import Unprocessable
from fhirmwl.fhir.base_rules import FORMATS, base_rule_issues, fields
from fhirmwl.fhir.model_shape import plainly_valid
from fhirmwl.fhir.outcome import issue

_JSON_TYPE = {
    "list_type": "a JSON array (the element repeats)",
    "string_type": "a JSON string",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "bool_type": "a JSON boolean (true or false)",
    "bool_parsing": "a JSON boolean (true or false)",
    "int_type": "a JSON integer",
    "int_parsing": "a JSON integer",
    "int_from_float": "a JSON integer",
    "decimal_type": "a JSON number",
    "decimal_parsing": "a JSON number",
    "float_type": "a JSON number",
    "float_parsing": "a JSON number",
    "date_type": "a FHIR date string (YYYY, YYYY-MM or YYYY-MM-DD)",
    "date_from_datetime_inexact": "a FHIR date string (YYYY, YYYY-MM or YYYY-MM-DD)",
    "datetime_type": "a FHIR dateTime string",
}
_CHOICES = re.compile(r"\[([^\]]*)\]")
_FORMATS = FORMATS


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    from fhir.resources import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _located(resource_type: str, resource: Any, loc: tuple[Any, ...]) -> tuple[str, str, Any]:
    """(FHIRPath expression, FHIR type of the last element, JSON value there) for a pydantic
    error location, following the model field tables (and ``resourceType`` of nested
    resources)."""
    expr, model, node, ftype = resource_type, resource_type, resource, resource_type
    for part in loc:
        if isinstance(part, int):
            expr += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if not isinstance(part, str) or part.startswith("function-") or "[" in part:
            continue
        expr += f".{part}"
        node = node.get(part) if isinstance(node, dict) else None
        spec = fields(model).get(part)
        ftype = spec.fhir_type if spec else "element"
        if spec and spec.child:
            model = spec.child
    if model == "Resource" and isinstance(node, dict):
        ftype = str(node.get("resourceType"))
    return expr, ftype, node


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return repr(value)[:80]


def _choice_issue(expr: str, node: Any, msg: str) -> dict[str, Any]:
    listed = _CHOICES.search(msg)
    names = [n.strip(" '\"") for n in (listed.group(1) if listed else "value").split(",")]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    present = [k for k in node if k in names] if isinstance(node, dict) else []
    where = f"{expr}.{prefix}[x]"
    if "multiple" in msg:
        text = f"{where}: only one type of {prefix}[x] is allowed, found {', '.join(present)}"
        return issue("error", "structure", text, where)
    return issue("error", "required", f"{where}: required element is missing", where)


def _wording(resource_type: str, resource: dict[str, Any], err: Any) -> dict[str, Any]:
    kind, msg = str(err.get("type")), str(err.get("msg", ""))
    expr, ftype, value = _located(resource_type, resource, tuple(err.get("loc", ())))
    if kind == "extra_forbidden":
        owner = expr.rsplit(".", 1)[0]
        name = expr.rsplit(".", 1)[-1]
        text = f"{expr}: unknown element '{name}' (not defined for {owner} in FHIR R5)"
        return issue("error", "structure", text, expr)
    if kind in ("missing", "model_field_validation.missing"):
        return issue("error", "required", f"{expr}: required element is missing", expr)
    if "field value is expected from this list" in msg or "field value from this list" in msg:
        return _choice_issue(expr, value, msg)
    if kind in _JSON_TYPE:
        text = f"{expr}: expected {_JSON_TYPE[kind]}, found {_shown(value)}"
        return issue("error", "structure", text, expr)
    if kind in ("string_pattern_mismatch", "value_error", "string_too_long", "too_long"):
        hint = f" ({_FORMATS[ftype]})" if ftype in _FORMATS else ""
        text = f"{expr}: {_shown(value)} is not a valid FHIR {ftype}{hint}"
        return issue("error", "value", text, expr)
    return issue("error", "value", f"{expr}: invalid {ftype} value {_shown(value)}", expr)


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
    if not resource_type[:1].isupper() or not fields(resource_type):
        text = f"unknown resourceType {resource_type[:64]!r} (not a FHIR R5 resource)"
        return [issue("error", "structure", text, "resourceType")]
    if plainly_valid(resource_type, resource):
        return []  # neither the base rules nor the model would find anything (``model_shape``)
    found = base_rule_issues(resource_type, resource)
    try:
        _model(resource_type).model_validate(resource)
    except ValidationError as exc:
        found += [_wording(resource_type, resource, err) for err in exc.errors()]
    except (KeyError, ValueError, TypeError):
        pass  # an unknown nested resourceType: base_rule_issues names it
    return _one_per_element(found)


def _one_per_element(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One issue per root cause: the first finding of each element is kept, and nothing is
    reported inside an element whose JSON type is already wrong."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    wrong_type: list[str] = []
    for item in found:
        expr = (item.get("expression") or [""])[0]
        if expr in seen or any(
            expr.startswith(w + ".") or expr.startswith(w + "[") for w in wrong_type
        ):
            continue
        seen.add(expr)
        if "expected a JSON" in item["diagnostics"]:
            wrong_type.append(expr)
        out.append(item)
    return out


def rerooted(issues: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    """The same issues with expressions (and texts) rooted at ``new`` instead of ``old`` (a
    resource checked alone, reported as ``Bundle.entry[1].resource``)."""
    if old == new:
        return issues
    out = []
    for item in issues:
        exprs = [
            new + e[len(old) :] if e.startswith(old) else e for e in item.get("expression", [])
        ]
        text = re.sub(rf"(^|\s){re.escape(old)}(?=[.\[:])", rf"\g<1>{new}", item["diagnostics"])
        out.append(dict(item, expression=exprs, diagnostics=text) if exprs else item)
    return out


def check_structure(resource_type: str, resource: dict[str, Any], *, built: bool = False) -> None:
    """Raise 422 with every structural problem of the resource.

    ``built``: the broker built the resource itself (HL7 v2 mapping, order completion): its
    shape is fixed by that code, so the pydantic model is not run; the base rules, every
    primitive value (with the model's own types), unknown elements and JSON object types are
    checked in one pass (``base_rule_issues(values=True)``). The mappings' output is proven to
    pass the full check by tests (tests/unit/mapping_v2/test_built_valid.py)."""
    if resource.get("resourceType") != resource_type:
        raise Unprocessable(
            f"resourceType is {resource.get('resourceType')!r}, expected {resource_type!r}",
            expression="resourceType",
        )
    if built and fields(resource_type):
        problems = _one_per_element(base_rule_issues(resource_type, resource, values=True))
    else:
        problems = structure_issues(resource_type, resource)
    if problems:
        raise Unprocessable(problems[0]["diagnostics"], issues=problems)
