"""Value-set membership for required bindings, from the ValueSets and CodeSystems we ship.

Only ``compose.include`` with explicit concepts, or a whole shipped CodeSystem, is expanded;
that covers the bindings of the guide's profiles without a terminology server.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhirmwl.conformance import registry


@lru_cache(maxsize=32)
def expansion(vs_url: str) -> frozenset[tuple[str, str]] | None:
    """The (system, code) pairs of a shipped ValueSet, or None when we cannot expand it."""
    vs = registry.get_shared("ValueSet", vs_url)
    if vs is None:
        return None
    codes: set[tuple[str, str]] = set()
    for include in vs.get("compose", {}).get("include", []):
        found = _include_codes(include)
        if found is None:
            return None
        codes |= found
    for exclude in vs.get("compose", {}).get("exclude", []):
        codes -= _include_codes(exclude) or set()
    return frozenset(codes)


def _include_codes(include: dict[str, Any]) -> set[tuple[str, str]] | None:
    system = include.get("system", "")
    if "concept" in include:
        return {(system, c["code"]) for c in include["concept"]}
    cs = registry.get_shared("CodeSystem", system)
    if cs is None:
        return None
    tree = _descendants(cs.get("concept", []))
    selected = set(tree)
    for flt in include.get("filter", []):
        chosen = _filtered(tree, flt)
        if chosen is None:
            return None
        selected &= chosen
    return {(system, code) for code in selected}


def _descendants(concepts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """code → codes below it (hierarchy by nested ``concept``) for a CodeSystem's concepts."""
    out: dict[str, set[str]] = {}
    for concept in concepts:
        below = _descendants(concept.get("concept", []))
        out.update(below)
        out[concept["code"]] = set(below) | {c for kids in below.values() for c in kids}
    return out


def _filtered(tree: dict[str, set[str]], flt: dict[str, Any]) -> set[str] | None:
    """Codes a ``compose.include.filter`` on the ``concept`` property selects (is-a,
    descendent-of, is-not-a, =, in); None for any other filter (cannot be expanded here)."""
    if flt.get("property") != "concept":
        return None
    op, value = flt.get("op"), str(flt.get("value", ""))
    if op == "is-a":
        return ({value} | tree[value]) if value in tree else set()
    if op == "descendent-of":
        return set(tree.get(value, set()))
    if op == "is-not-a":
        return set(tree) - {value} - tree.get(value, set())
    if op == "=":
        return {value} & set(tree)
    if op == "in":
        return {v.strip() for v in value.split(",")} & set(tree)
    return None


def codings_of(value: Any) -> list[tuple[str | None, str | None]]:
    """(system, code) pairs carried by a code, Coding or CodeableConcept value."""
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [(c.get("system"), c.get("code")) for c in value.get("coding") or []]
    if "code" in value:
        return [(value.get("system"), value.get("code"))]
    return []


def display(vs_url: str) -> str:
    vs = registry.get_shared("ValueSet", vs_url)
    return f"'{vs.get('title', vs['id'])}' ({vs_url})" if vs else vs_url
