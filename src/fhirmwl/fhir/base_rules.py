"""R5 base rules that the ``fhir.resources`` models do not enforce, checked on every write.

The pydantic models know every element, its datatype and the primitive regexes, but they accept
``"name": []`` and ``{}`` (ele-1), ``"active": "yes"`` (lax coercion), ids of 65–255 characters
and any code in ``Patient.gender`` or ``Task.status``. This module walks the JSON once, along the
model classes, and reports those with a FHIRPath expression per element:

- **ele-1**: no empty arrays, objects or strings;
- **required bindings** of ``code`` elements: the value lists come from the models' field
  metadata (``enum_values``); where the generator truncated a list (``+``) we complete it from
  the R5 value set (``_COMPLETED``) or leave the element unchecked;
- **id**: ``[A-Za-z0-9\\-.]{1,64}`` (the models allow 255);
- **JSON types of primitives**: booleans are JSON ``true``/``false``, integers JSON integers;
- a few **core invariants** that need only the element itself (``fhir.core_invariants``).

With ``values=True`` (``base_rule_issues(..., values=True)``, used by ``fhir.structure``'s
``check_built`` for resources the broker built itself) the same pass also checks what the
pydantic model would: every primitive value against the model's own type for that element
(pattern, date/time format, integer range; the verdict is cached per type and value), unknown
elements, and a JSON object where a complex type is expected. What it does not check — required
elements, cardinality, choice types — is fixed by the code that builds those resources.

The per-class field table is built once per model class (``_fields``) so a write costs one pass
over the resource.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fhirmwl.fhir.core_invariants import CORE, invariants_for
from fhirmwl.fhir.outcome import issue

# Required bindings whose value list the model generator cut short with "+" (R5 value sets).
_COMPLETED: dict[tuple[str, str], tuple[str, ...]] = {
    ("Task", "status"): (
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    ),
    ("ServiceRequest", "intent"): (
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    ),
}
ID_MAX = 64
FORMATS = {
    "date": "YYYY, YYYY-MM or YYYY-MM-DD",
    "dateTime": "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone (Z or +hh:mm)",
    "instant": "YYYY-MM-DDThh:mm:ss[.sss] with a time zone (Z or +hh:mm)",
    "time": "hh:mm:ss",
    "id": "1 to 64 of A-Z a-z 0-9 - .",
    "code": "no leading, trailing or double whitespace",
    "uri": "no whitespace",
    "decimal": "a JSON number",
}
_INTEGERS = frozenset({"Integer", "Integer64", "UnsignedInt", "PositiveInt"})


@dataclass(frozen=True)
class FieldSpec:
    """What the walker needs to know about one JSON property of a model class."""

    fhir_type: str  # FHIR type name: "boolean", "id", "HumanName", "Resource", ...
    child: str | None  # model class name of a complex type, "Resource" for contained resources
    enum: frozenset[str] | None
    json: str | None  # JSON type of a primitive: boolean, integer, number, string
    # a JSON-string primitive without a code list that is not an ``id``: the commonest element,
    # for which a non-empty ``str`` is all ``_primitive`` asks (``_item``'s fast path)
    plain: bool = False
    repeats: bool = False  # a JSON array in FHIR JSON (the model's annotation is a list)


# FHIR primitive type name → the annotated type the models use for it (recorded by ``_spec``).
_PRIMITIVE_TYPES: dict[str, Any] = {}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType, list):
            annotation = args[0]
        else:
            return annotation


def _repeats(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is list:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_repeats(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def _spec(owner: str, alias: str, field: Any) -> FieldSpec:
    spec = _spec_of(owner, alias, field)
    if _repeats(field.annotation):
        spec = dataclasses.replace(spec, repeats=True)
    return spec


def _spec_of(owner: str, alias: str, field: Any) -> FieldSpec:
    inner = _unwrap(field.annotation)
    meta = [m for m in getattr(inner, "__metadata__", ())]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    values = extra.get("enum_values")
    enum = _COMPLETED.get((owner, alias))
    if enum is None and values and "+" not in values:
        enum = tuple(values)
    codes = frozenset(enum) if enum else None
    if meta:
        kind = type(meta[0]).__name__
        json = "integer" if kind in _INTEGERS else "number" if kind == "Decimal" else "string"
        fhir_type = kind[0].lower() + kind[1:]
        _PRIMITIVE_TYPES.setdefault(fhir_type, inner)
        plain = json == "string" and fhir_type != "id" and codes is None
        return FieldSpec(fhir_type, None, codes, json, plain)
    if inner is bool:
        return FieldSpec("boolean", None, None, "boolean")
    name = getattr(inner, "__name__", "")
    child = name[: -len("Type")] if name.endswith("Type") else None
    return FieldSpec(child or "string", child, codes, None)


@lru_cache(maxsize=1024)
def fields(model_name: str) -> dict[str, FieldSpec]:
    """JSON property name → :class:`FieldSpec` for one ``fhir.resources`` model class."""
    from fhir.resources import get_fhir_model_class

    try:
        model = get_fhir_model_class(model_name)
    except (KeyError, ValueError):
        return {}
    owner = model_name
    return {
        (f.alias or name): _spec(owner, f.alias or name, f)
        for name, f in model.model_fields.items()
        if name != "fhir_comments"
    }


def _ele1(expr: str, what: str) -> dict[str, Any]:
    return issue(
        "error",
        "structure",
        f"{expr}: {what} is not allowed; leave the element out instead (ele-1: "
        "all FHIR elements must have a value or children)",
        expr,
    )


def _primitive(spec: FieldSpec, value: Any, expr: str, out: list[dict[str, Any]]) -> None:
    if spec.json == "boolean" and not isinstance(value, bool):
        out.append(_bad(expr, value, "a JSON boolean (true or false)"))
    elif spec.json == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        out.append(_bad(expr, value, f"a JSON integer ({spec.fhir_type})"))
    elif spec.json == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        out.append(_bad(expr, value, "a JSON number (decimal)"))
    elif spec.json == "string" and not isinstance(value, str):
        out.append(_bad(expr, value, f"a JSON string ({spec.fhir_type})"))
    elif isinstance(value, str):
        if value == "":
            out.append(_ele1(expr, "an empty string"))
        elif spec.fhir_type == "id" and len(value) > ID_MAX:
            out.append(
                issue(
                    "error",
                    "value",
                    f"{expr}: an id has at most {ID_MAX} characters "
                    f"([A-Za-z0-9\\-.]{{1,64}}), found {len(value)}",
                    expr,
                )
            )
        elif spec.enum is not None and value not in spec.enum:
            allowed = " | ".join(sorted(spec.enum))
            out.append(
                issue(
                    "error",
                    "code-invalid",
                    f"{expr}: the code {value[:64]!r} is not in the required value set ({allowed})",
                    expr,
                )
            )


def _bad(expr: str, value: Any, wanted: str) -> dict[str, Any]:
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return issue("error", "structure", f"{expr}: expected {wanted}, found {shown[:64]}", expr)


def walk(
    model_name: str,
    node: dict[str, Any],
    expr: str,
    out: list[dict[str, Any]],
    values: bool = False,
) -> None:
    """Append the base-rule issues of ``node`` (an instance of ``model_name``) to ``out``;
    ``values``: also what the model would find (see the module docstring)."""
    if not node:
        out.append(_ele1(expr, "an empty object"))
        return
    table = fields(model_name)
    for key, value in node.items():
        spec = table.get(key)
        if spec is None:
            if values and key != "resourceType":
                text = f"{expr}.{key}: unknown element '{key}' (not defined for {expr} in FHIR R5)"
                out.append(issue("error", "structure", text, f"{expr}.{key}"))
            continue  # unknown element or resourceType: the model reports unknown elements
        if isinstance(value, list):
            path = f"{expr}.{key}"
            if not value:
                out.append(_ele1(path, "an empty array"))
            for i, item in enumerate(value):
                if spec.plain and item.__class__ is str and item:  # (see ``_item``)
                    if values and not _value_ok(spec.fhir_type, item):
                        _bad_value(spec, item, f"{path}[{i}]", out)
                    continue
                _item(spec, item, f"{path}[{i}]", out, values)
        elif spec.plain and value.__class__ is str and value:
            # fast path of ``_item``: nothing for ``_primitive`` to report on a non-empty str
            if values and not _value_ok(spec.fhir_type, value):
                _bad_value(spec, value, f"{expr}.{key}", out)
        else:
            _item(spec, value, f"{expr}.{key}", out, values)
    if model_name not in CORE and "contained" not in node:
        return  # (no invariant applies: ``invariants_for`` would find none)
    for inv in invariants_for(model_name, node):
        if not inv.holds(node):
            text = (
                f"{expr}: constraint {inv.key} failed: {inv.human} (expression: {inv.expression})"
            )
            out.append(issue("error", "invariant", text, expr))


def _item(
    spec: FieldSpec, value: Any, expr: str, out: list[dict[str, Any]], values: bool = False
) -> None:
    if value is None:
        return  # null placeholders pair primitive arrays with their ``_x`` extensions
    if spec.child is None:
        before = len(out)
        _primitive(spec, value, expr, out)
        if values and len(out) == before and not _value_ok(spec.fhir_type, _key(value)):
            _bad_value(spec, value, expr, out)
        return
    if not isinstance(value, dict):
        if values:
            out.append(_bad(expr, value, "a JSON object"))
        return  # the model reports the wrong JSON type
    if spec.child == "Resource":
        rtype = value.get("resourceType")
        if isinstance(rtype, str) and rtype[:1].isupper() and fields(rtype):
            walk(rtype, value, expr, out, values)
        else:
            text = f"{expr}: unknown resourceType {str(rtype)[:64]!r} (not a FHIR R5 resource)"
            out.append(issue("error", "structure", text, f"{expr}.resourceType"))
        return
    walk(spec.child, value, expr, out, values)


def _bad_value(spec: FieldSpec, value: Any, expr: str, out: list[dict[str, Any]]) -> None:
    hint = f" ({FORMATS[spec.fhir_type]})" if spec.fhir_type in FORMATS else ""
    text = f"{expr}: {repr(value)[:80]} is not a valid FHIR {spec.fhir_type}{hint}"
    out.append(issue("error", "value", text, expr))


def _key(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else repr(value)


@lru_cache(maxsize=256)
def _adapter(fhir_type: str) -> TypeAdapter[Any] | None:
    annotated = _PRIMITIVE_TYPES.get(fhir_type)
    return TypeAdapter(annotated) if annotated is not None else None


@lru_cache(maxsize=65536)
def _value_ok(fhir_type: str, value: Any) -> bool:
    """The model's own verdict on one primitive value (same pydantic type, same rules)."""
    adapter = _adapter(fhir_type)
    if adapter is None:
        return True
    try:
        adapter.validate_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def base_rule_issues(
    resource_type: str, resource: dict[str, Any], values: bool = False
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    walk(resource_type, resource, resource_type, out, values)
    return out
