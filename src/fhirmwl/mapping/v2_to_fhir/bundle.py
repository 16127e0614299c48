"""Transaction Bundle entries that can be applied more than once without creating duplicates.

Every resource the mapping produces is keyed by a business identifier, so each entry is a
conditional update (`PUT ServiceRequest?identifier=system|value`) or, for resources the broker
should not overwrite (a Practitioner, a station Device), a conditional create (`ifNoneExist`).
Entries reference each other through `urn:uuid:` fullUrls, and resources the message refers to
but does not carry (the Patient of a cancel) through conditional references.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def identifier_query(system: str | None, value: str) -> str:
    token = f"{system}|{value}" if system else value
    return "identifier=" + quote(token, safe=":/|.-_")


def conditional_reference(resource_type: str, ident: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"{resource_type}?{identifier_query(ident.get('system'), ident['value'])}"}


def put_entry(full_url: str, resource: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    """Conditional update keyed by identifier ``key``."""
    url = f"{resource['resourceType']}?{identifier_query(key.get('system'), key['value'])}"
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "PUT", "url": url}}


def create_entry(full_url: str, resource: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    """Conditional create keyed by identifier ``key``."""
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": identifier_query(key.get("system"), key["value"]),
        },
    }


def transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def add_tag(resource: dict[str, Any], tag: dict[str, str]) -> None:
    meta = resource.setdefault("meta", {})
    tags = meta.setdefault("tag", [])
    if tag not in tags:
        tags.append(tag)


def _rewrite_refs(node: Any, alias: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in alias:
            node["reference"] = alias[ref]
        for value in node.values():
            _rewrite_refs(value, alias)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, alias)


def dedupe(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge entries with the same conditional key (two creates of one station Device, say).

    Two conditional creates with the same `ifNoneExist` in one transaction would both create,
    so the later entries are dropped and references to them point at the first one.
    """
    first: dict[tuple[str, str, str], str] = {}
    alias: dict[str, str] = {}
    kept = []
    for entry in entries:
        req = entry["request"]
        key = (req["method"], req["url"], req.get("ifNoneExist", ""))
        if key in first:
            alias[entry["fullUrl"]] = first[key]
            continue
        first[key] = entry["fullUrl"]
        kept.append(entry)
    if alias:
        _rewrite_refs(kept, alias)
    return kept
