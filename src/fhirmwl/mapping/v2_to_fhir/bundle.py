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
