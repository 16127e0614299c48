"""Decide, without the pydantic models, that they would accept a resource.

Why: the R5 structure check of untrusted input (REST writes, transactions, ``$create-order``)
runs the ``fhir.resources`` model over the whole resource, a fifth of an order transaction's
CPU, and nearly every write it sees is valid. ``plainly_valid`` walks the JSON once along the
same field tables as ``fhir.base_rules`` and answers True only when every element is one the
model accepts as it is: a known element, a JSON array exactly where the element repeats, no
``null``, every primitive accepted by the model's own type (``base_rules._value_ok``), nested
objects of the right kind, every required element present and at most one type of each
choice element (exactly one where the choice is required), and the core invariants of
``fhir.base_rules`` hold — so the base rules find nothing either. Anything else — primitive
extensions (``_x``), ``fhir_comments``, an unknown nested resource — answers False and the
model runs as before, so its findings and wording are unchanged. A test compares the verdict
with the model's on the guide's examples and thousands of mutations of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhirmwl.fhir.base_rules import FieldSpec, _key, _primitive, _value_ok, fields
from fhirmwl.fhir.core_invariants import invariants_for


@dataclass(frozen=True)
class ModelRules:
    """What one model class asks beyond its field table."""

    resource_type: str | None  # the ``resourceType`` of a resource model, None for a datatype
    required: tuple[str, ...]  # JSON names of the required elements
    choices: tuple[tuple[tuple[str, ...], bool], ...]  # (JSON names of a choice, required)


@lru_cache(maxsize=1024)
def model_rules(model_name: str) -> ModelRules | None:
    """The rules of one model class; None when it is not a ``fhir.resources`` model."""
    from fhir.resources import get_fhir_model_class

    try:
        model = get_fhir_model_class(model_name)
    except (KeyError, ValueError):
        return None
    required: list[str] = []
    groups: dict[str, tuple[list[str], bool]] = {}
    for name, f in model.model_fields.items():
        alias = f.alias or name
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if f.is_required() or extra.get("element_required"):
            required.append(alias)
        if extra.get("one_of_many"):
            group = str(extra["one_of_many"])
            names, req = groups.setdefault(group, ([], False))
            names.append(alias)
            groups[group] = (names, req or extra.get("one_of_many_required") is True)
    rtype = model.__resource_type__ if model.has_resource_base() else None
    return ModelRules(
        rtype,
        tuple(required),
        tuple((tuple(names), req) for names, req in groups.values()),
    )


def plainly_valid(model_name: str, node: Any) -> bool:
    """True only when the ``model_name`` model would accept ``node`` without an error and
    ``base_rule_issues`` would find nothing."""
    if not isinstance(node, dict) or not node:
        return False
    table = fields(model_name)
    rules = model_rules(model_name)
    if not table or rules is None:
        return False
    for key, value in node.items():
        if key == "resourceType":
            if rules.resource_type is None or value != rules.resource_type:
                return False
            continue
        spec = table.get(key)
        if spec is None or value is None or key[:1] == "_":
            return False
        if spec.repeats:
            if not isinstance(value, list) or not value:
                return False
            for item in value:
                if not _item_ok(spec, item):
                    return False
        elif isinstance(value, list) or not _item_ok(spec, value):
            return False
    for name in rules.required:
        if node.get(name) is None:
            return False
    for names, required in rules.choices:
        present = sum(1 for name in names if name in node)
        if present > 1 or (required and not present):
            return False
    return all(inv.holds(node) for inv in invariants_for(model_name, node))


def _item_ok(spec: FieldSpec, value: Any) -> bool:
    if value is None:
        return False
    if spec.child is None:
        found: list[dict[str, Any]] = []
        _primitive(spec, value, "", found)
        return not found and _value_ok(spec.fhir_type, _key(value))
    if spec.child == "Resource":
        rtype = value.get("resourceType") if isinstance(value, dict) else None
        return isinstance(rtype, str) and rtype[:1].isupper() and plainly_valid(rtype, value)
    return plainly_valid(spec.child, value)
