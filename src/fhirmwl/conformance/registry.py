"""Read access to the conformance resources shipped as package data.

The API serves them read-only (``/fhir/StructureDefinition`` …), the validator compiles the
StructureDefinitions and ValueSets from here, and tests compare the mapping code with the
ConceptMap rows. The files are loaded once per process; callers get deep copies so nobody can
change the published definitions by accident.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from fhirmwl.conformance.defs_bundles import PROFILE_CREATE_ORDER_BUNDLE, PROFILE_ORDER_BUNDLE

__all__ = [
    "PROFILE_CREATE_ORDER_BUNDLE",
    "PROFILE_ORDER_BUNDLE",
    "RESOURCE_TYPES",
    "conceptmap_rows",
    "get",
    "load_all",
    "search",
]

RESOURCE_TYPES = (
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "OperationDefinition",
    "SearchParameter",
    "CapabilityStatement",
)
_SEARCHABLE = ("url", "name", "status", "id", "version", "title", "type", "code", "base", "kind")
# What ``search`` accepts, as /metadata lists it (``id`` is searched as ``_id``).
search_param_names = ("_id", *(p for p in _SEARCHABLE if p != "id"))


@lru_cache(maxsize=1)
def _loaded() -> tuple[dict[str, Any], ...]:
    folder = resources.files("fhirmwl.conformance") / "resources"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out.append(json.loads(entry.read_text(encoding="utf-8")))
    return tuple(out)


@lru_cache(maxsize=1)
def _index() -> dict[tuple[str, str], dict[str, Any]]:
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for res in _loaded():
        index[(res["resourceType"], res["id"])] = res
        index[(res["resourceType"], res["url"])] = res
    return index


def load_all() -> list[dict[str, Any]]:
    """Every shipped conformance resource (deep copies)."""
    return copy.deepcopy(list(_loaded()))


def get_shared(resource_type: str, url_or_id: str) -> dict[str, Any] | None:
    """Like :func:`get` but without copying; the caller must not modify the result."""
    return _index().get((resource_type, url_or_id.split("|", 1)[0]))


def get(resource_type: str, url_or_id: str) -> dict[str, Any] | None:
    """One resource by canonical URL (a ``|version`` suffix is ignored) or by id."""
    found = get_shared(resource_type, url_or_id)
    return copy.deepcopy(found) if found is not None else None


def _matches(resource: dict[str, Any], name: str, wanted: str) -> bool:
    value = resource.get(name)
    values = value if isinstance(value, list) else [value]
    alternatives = wanted.split(",")
    if name in ("name", "title"):  # FHIR string search: case-insensitive prefix
        return any(
            isinstance(v, str) and v.lower().startswith(a.lower())
            for v in values
            for a in alternatives
        )
    return any(isinstance(v, str) and v.split("|")[0] in alternatives for v in values)


def search(resource_type: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Resources of one type whose url/name/status/id/… match every given parameter.

    ``_id`` is accepted for ``id``; comma-separated values are alternatives; ``name`` and
    ``title`` match case-insensitive prefixes. Unknown parameter names raise ``KeyError`` so
    the API can answer 400 instead of silently ignoring them.
    """
    criteria = {("id" if k == "_id" else k): v for k, v in (params or {}).items()}
    for key in criteria:
        if key not in _SEARCHABLE:
            raise KeyError(key)
    hits = [
        r
        for r in _loaded()
        if r["resourceType"] == resource_type
        and all(_matches(r, k, v) for k, v in criteria.items())
    ]
    return copy.deepcopy(hits)


def conceptmap_rows(map_id: str) -> list[tuple[str, str, str]]:
    """Flattened rows of a shipped ConceptMap: ``(source code, target code, tag)``.

    For ``fhir-to-dicom-mwl`` that is (source element path, DICOM keyword, tag as 8 hex
    digits); for ``v2-to-fhir-order`` it is (v2 field, FHIR element path, target profile URL).
    """
    cm = get_shared("ConceptMap", map_id)
    if cm is None:
        raise KeyError(map_id)
    rows: list[tuple[str, str, str]] = []
    for group in cm.get("group", []):
        for element in group.get("element", []):
            for target in element.get("target", []):
                props = {p["code"]: p.get("valueString") for p in target.get("property", [])}
                third = props.get("tag") or group.get("target", "")
                rows.append((element["code"], target["code"], third))
    return rows
