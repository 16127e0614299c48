"""Literal FHIR references (``Type/id``, absolute URLs, ``…/_history/n``) split into (type, id).

One parser for the index row builder, the worklist graph loader, the profile validator's store
resolver and the order lifecycle, so they agree on what a reference points at. ``urn:uuid:``
and contained (``#``) references resolve to nothing here: they only mean something inside a
Bundle or a resource.
"""

from __future__ import annotations

from typing import Any


def split_reference(reference: str | None) -> tuple[str, str] | None:
    if not reference or reference.startswith(("urn:", "#")):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    return None


def reference_id(reference: dict[str, Any] | None, resource_type: str) -> str | None:
    """The id a Reference element points at, when it points at ``resource_type``."""
    target = split_reference((reference or {}).get("reference"))
    return target[1] if target and target[0] == resource_type else None
