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
        system = include.get("system", "")
        if "concept" in include:
            codes.update((system, c["code"]) for c in include["concept"])
            continue
        cs = registry.get_shared("CodeSystem", system)
        if cs is None:
            return None
        codes.update((system, c["code"]) for c in cs.get("concept", []))
    return frozenset(codes)


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
