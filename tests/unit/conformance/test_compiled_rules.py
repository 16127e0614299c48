"""The write path's precomputed forms give the same verdicts as the plain functions they replace.

The validator decides once per profile what it used to decide per item (compiled patterns,
slice discriminator plans) and ``index_rows`` applies each search parameter from a cached plan.
These tests run both forms over every shipped profile and every value of the guide's examples
(and variants of them that must not match), so a difference cannot hide behind the examples
being valid.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _conformance_examples import example_names, load_example
from tests.conftest import IG_EXAMPLES

from fhirmwl.conformance import registry
from fhirmwl.fhir import indexing
from fhirmwl.fhir.references import split_reference
from fhirmwl.fhir.search_params import SEARCH_PARAMS
from fhirmwl.validation import slicing as sl
from fhirmwl.validation.compiler import ElementRule, compiled


def _profiles() -> list[str]:
    return [
        sd["url"]
        for sd in registry.search("StructureDefinition")
        if sd.get("derivation") == "constraint" and compiled(sd["url"]) is not None
    ]


def _rules(rule: ElementRule) -> Iterator[ElementRule]:
    yield rule
    for sub in (*rule.slices.values(), *rule.children.values()):
        yield from _rules(sub)


def _resources() -> list[dict[str, Any]]:
    found = [load_example(n) for n in example_names()]
    found.append(json.loads(IG_EXAMPLES.read_text()))
    out: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("resourceType"), str):
                out.append(node)
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(found)
    return out


def _values(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _values(v)
    elif isinstance(node, list):
        for v in node:
            yield from _values(v)


def _variants(value: Any) -> Iterator[Any]:
    """The value and near misses: a changed code, display or system, a key removed, a list
    member dropped, the value wrapped in or taken out of a list, a reference to another type."""
    yield value
    if isinstance(value, dict):
        for key in list(value):
            changed = copy.deepcopy(value)
            changed[key] = "other" if isinstance(value[key], str) else None
            yield changed
            yield {k: v for k, v in value.items() if k != key}
        yield [value]
        if isinstance(value.get("reference"), str):
            for target in ("Patient/p1", "Group/g1", "Device/d1"):
                yield dict(value, reference=target)
    elif isinstance(value, list) and value:
        yield value[1:]
        yield value[0]


@pytest.fixture(scope="module")
def candidates() -> list[Any]:
    seen: dict[str, Any] = {}
    for resource in _resources():
        for value in _values(resource):
            if isinstance(value, dict | list):
                for variant in _variants(value):
                    seen.setdefault(json.dumps(variant, sort_keys=True), variant)
    return list(seen.values())


def test_compiled_patterns_match_like_matches_pattern(candidates: list[Any]) -> None:
    patterns = [
        r.pattern
        for url in _profiles()
        for r in _rules(compiled(url).root)
        if r.pattern  # type: ignore[union-attr]
    ]
    assert patterns
    for pattern in patterns:
        matcher = sl.compile_pattern(pattern)
        for value in candidates:
            assert matcher(value) == sl.matches_pattern(value, pattern), (pattern, value)


def test_discriminator_plans_decide_like_the_discriminators(candidates: list[Any]) -> None:
    checked = 0
    for url in _profiles():
        for rule in _rules(compiled(url).root):  # type: ignore[union-attr]
            for slice_rule in rule.slices.values():
                for disc in rule.discriminators:
                    plan = sl.plan_of(slice_rule, disc)
                    kind, path = disc.get("type"), disc.get("path", "$this")
                    if kind in ("value", "pattern"):
                        plain = sl.value_discriminator
                    elif kind == "exists":
                        plain = sl.exists_discriminator
                    else:
                        assert plan[0] == "ref"
                        continue
                    for item in candidates:
                        expected = bool(plain(slice_rule, item, path))
                        assert sl.discriminates(plan, item) == expected, (url, disc, item)
                        checked += 1
    assert checked


def _reference_rows(resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    """``index_rows`` as it was written first (a generator walk per parameter and path)."""
    rows = indexing.IndexRows()

    def tokens(value: Any) -> Iterator[tuple[Any, ...]]:
        if isinstance(value, bool):
            yield None, "true" if value else "false", None, None
        elif isinstance(value, str):
            yield None, value, None, None
        elif isinstance(value, dict):
            if "coding" in value or "text" in value:
                for coding in value.get("coding") or []:
                    yield coding.get("system"), coding.get("code"), None, None
            elif "value" in value and ("system" in value or "type" in value or "use" in value):
                for t in (value.get("type") or {}).get("coding") or [{}]:
                    yield value.get("system"), value["value"], t.get("system"), t.get("code")
            elif "code" in value:
                yield value.get("system"), value.get("code"), None, None
            elif "value" in value:
                yield value.get("system"), value["value"], None, None

    for param in SEARCH_PARAMS.get(resource_type, {}).values():
        for raw_path in param.paths:
            path, _, only = raw_path.partition("[")
            only = only.rstrip("]")
            for value in indexing.walk(resource, path):
                if param.type == "token":
                    rows.tokens.extend((param.name, *t) for t in tokens(value))
                elif param.type == "string":
                    rows.strings.extend(
                        (param.name, indexing.normalize(s), s) for s in indexing._strings(value)
                    )
                elif param.type == "date":
                    rows.dates.extend((param.name, lo, hi) for lo, hi in indexing._dates(value))
                elif param.type == "uri" and isinstance(value, str):
                    rows.tokens.append((param.name, None, value, None, None))
                elif param.type == "reference":
                    ref = value.get("reference") if isinstance(value, dict) else None
                    target = split_reference(ref) if isinstance(ref, str) else None
                    if target and (not only or target[0] == only):
                        rows.refs.append((param.name, target[0], target[1]))
    rows.tokens = list(dict.fromkeys(rows.tokens))
    rows.strings = list(dict.fromkeys(rows.strings))
    rows.refs = list(dict.fromkeys(rows.refs))
    rows.uniques = indexing._uniques(resource_type, resource)
    return vars(rows)


def test_index_rows_from_the_plan_are_the_walked_rows() -> None:
    resources = _resources()
    assert len(resources) > 10
    for resource in resources:
        rtype = resource["resourceType"]
        variants = [v for key in resource for v in _key_variants(resource, key)]
        for variant in [resource, *variants]:
            new = _outcome(lambda: vars(indexing.index_rows(rtype, variant)))  # noqa: B023
            assert new == _outcome(lambda: _reference_rows(rtype, variant)), variant  # noqa: B023


def _outcome(fn: Any) -> Any:
    """The result, or the exception type for input the structure check refuses before."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def _key_variants(resource: dict[str, Any], key: str) -> Iterator[dict[str, Any]]:
    """The resource with one top-level element replaced by each of its near misses."""
    for variant in _variants(resource[key]):
        yield dict(resource, **{key: variant})
