"""``plainly_valid`` answers True only where the ``fhir.resources`` model and the base rules
find nothing.

The R5 structure check skips the model when ``fhir.model_shape.plainly_valid`` says it would
accept the resource, so a wrong True would let a malformed resource through. Each mutation of
the guide's examples (every element removed, nulled, wrapped in or taken out of an array, given
a value of another JSON type or an invalid one, an unknown or a second choice element added,
a core invariant broken) is
checked both ways: a True must come with the model's acceptance, and the structure issues must
be exactly those of the model pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _conformance_examples import example_names, load_example
from pydantic import ValidationError
from tests.conftest import IG_EXAMPLES

from fhirmwl.fhir import structure
from fhirmwl.fhir.base_rules import base_rule_issues
from fhirmwl.fhir.model_shape import model_rules, plainly_valid

_ODD_VALUES: tuple[Any, ...] = (
    "",
    " x",
    "x",
    1,
    -1,
    1.5,
    True,
    {},
    [],
    {"unknown": 1},
    "2024-13-45",
    "urn:uuid:not a uuid",
    {"reference": "Patient/1"},
    [None],
    "a" * 70,
)


def _resources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("resourceType"), str):
                found.append(node)
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect([load_example(n) for n in example_names()])
    collect(json.loads(IG_EXAMPLES.read_text()))
    unique = {json.dumps(r, sort_keys=True): r for r in found if r["resourceType"] != "Bundle"}
    return list(unique.values())


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i)
            yield from _paths(value, (*path, i))


def _set(root: Any, path: tuple[Any, ...], fn: Any) -> Any:
    out = copy.deepcopy(root)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    fn(parent, path[-1])
    return out


def _mutations(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for n, path in enumerate(_paths(resource)):
        if path == ("resourceType",):
            continue

        def delete(p: Any, k: Any) -> None:
            del p[k]

        def null(p: Any, k: Any) -> None:
            p[k] = None

        def wrap(p: Any, k: Any) -> None:
            p[k] = [p[k]]

        def unwrap(p: Any, k: Any) -> None:
            if isinstance(p[k], list) and p[k]:
                p[k] = p[k][0]

        def odd(p: Any, k: Any, value: Any = _ODD_VALUES[n % len(_ODD_VALUES)]) -> None:
            p[k] = copy.deepcopy(value)

        def odd2(p: Any, k: Any, value: Any = _ODD_VALUES[(n * 7 + 3) % len(_ODD_VALUES)]) -> None:
            p[k] = copy.deepcopy(value)

        def extra(p: Any, k: Any) -> None:
            if isinstance(p[k], dict):
                p[k]["unknownElement"] = "x"
                p[k]["_" + next(iter(p[k]))] = {"extension": []}

        def breaker(p: Any, k: Any) -> None:  # a core invariant fails (ref-2, per-1)
            if isinstance(p[k], dict) and "reference" in p[k]:
                p[k] = {"type": "Patient"}
            elif isinstance(p[k], dict) and ("start" in p[k] or "end" in p[k]):
                p[k] = {"start": "2030-01-01", "end": "2020-01-01"}

        for fn in (delete, null, wrap, unwrap, odd, odd2, extra, breaker):
            yield _set(resource, path, fn)
    yield from _choice_twins(resource)


def _choice_twins(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The resource with a second type of a choice element it uses, and without a required
    choice element."""
    rules = model_rules(resource["resourceType"])
    assert rules is not None
    for names, _required in rules.choices:
        present = [n for n in names if n in resource]
        for name in present:
            for other in names:
                if other != name:
                    yield dict(resource, **{other: resource[name]})
            yield {k: v for k, v in resource.items() if k != name}


def _model_pass(resource_type: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The structure issues as computed before the shortcut: base rules plus the model."""
    found = base_rule_issues(resource_type, resource)
    try:
        structure._model(resource_type).model_validate(resource)
    except ValidationError as exc:
        found += [structure._wording(resource_type, resource, err) for err in exc.errors()]
    except (KeyError, ValueError, TypeError):
        pass
    return structure._one_per_element(found)


def _model_accepts(resource_type: str, resource: dict[str, Any]) -> bool:
    try:
        structure._model(resource_type).model_validate(resource)
    except (ValidationError, KeyError, ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: r["resourceType"])
def test_plainly_valid_only_where_the_model_accepts(resource: dict[str, Any]) -> None:
    rtype = resource["resourceType"]
    assert plainly_valid(rtype, resource) == _model_accepts(rtype, resource)
    shortcut = 0
    for mutated in _mutations(resource):
        if plainly_valid(rtype, mutated):
            shortcut += 1
            assert _model_accepts(rtype, mutated), mutated
            assert not base_rule_issues(rtype, mutated), mutated
        assert structure._structure_issues(rtype, mutated) == _model_pass(rtype, mutated)
    assert shortcut  # (some mutations stay valid: removing an optional element)


def test_field_tables_know_every_union() -> None:
    """``plainly_valid`` reads one type per element: the models have no other unions than
    ``fhir_comments`` (which it never accepts)."""
    import typing

    from fhir.resources import get_fhir_model_class

    for name in ("ServiceRequest", "Task", "Patient", "Encounter", "Device", "ImagingStudy"):
        for fname, f in get_fhir_model_class(name).model_fields.items():
            args = [a for a in typing.get_args(f.annotation) if a is not type(None)]
            if typing.get_origin(f.annotation) is typing.Union and len(args) > 1:
                assert fname == "fhir_comments", (name, fname)
