"""HTTP helpers for the FHIR API: body parsing, Prefer handling, FHIR JSON responses.

Kept apart from the routes so that every route shares one definition of "what a FHIR
request body is" (415/400 rules) and "what a FHIR response looks like" (content type, ETag,
Last-Modified, Location).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhirmwl.errors import BadRequest, UnsupportedMediaType
from fhirmwl.security.http_limits import check_bundle_entries
from fhirmwl.store import Stored

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_XML_TYPES = ("application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml")


@dataclass(frozen=True)
class Prefer:
    ret: str = "representation"  # minimal | representation | OperationOutcome
    handling: str = "lenient"  # strict | lenient


def parse_prefer(request: Request) -> Prefer:
    ret, handling = "representation", "lenient"
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            value = value.strip().strip('"')
            if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
                ret = value
            elif key == "handling" and value in ("strict", "lenient"):
                handling = value
    return Prefer(ret, handling)


async def json_body(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _XML_TYPES:
        from fhirmwl.api.formats import xml_body

        return xml_body(await request.body())
    if ctype not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"content type {ctype or '(none)'!r} is not supported; send application/fhir+json "
            "or application/fhir+xml"
        )
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "resourceType" not in data:
        raise BadRequest("request body must be a FHIR resource (a JSON object with resourceType)")
    if b"\\u0000" in raw:
        where = nul_path(data, str(data["resourceType"]))
        if where:
            raise BadRequest(
                f"{where} contains a NUL character (U+0000), which no FHIR string may carry",
                expression=where,
            )
    settings = getattr(getattr(request.app.state, "services", None), "settings", None)
    check_bundle_entries(data, getattr(settings, "http_max_bundle_entries", 0))
    return data


def nul_path(node: Any, path: str) -> str | None:
    """FHIRPath-like location of the first string holding U+0000 (permanent 400, not 500)."""
    if isinstance(node, str):
        return path if "\x00" in node else None
    items = node.items() if isinstance(node, dict) else enumerate(node or [])
    if not isinstance(node, (dict, list)):
        return None
    for key, value in items:
        found = nul_path(value, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return None


async def form_params(request: Request) -> list[tuple[str, str]]:
    """Parameters of ``POST _search`` (application/x-www-form-urlencoded, or no body)."""
    raw = await request.body()
    if not raw:
        return []
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("POST _search needs application/x-www-form-urlencoded")
    try:
        return parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed form body: {exc}") from None


def fhir_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, str):
        content = body.encode()
    elif body is None:
        content = b""
    else:
        content = orjson.dumps(body)
    return Response(
        content,
        status_code=status,
        headers=headers,
        media_type=f"{FHIR_JSON}; charset=utf-8" if content else None,
    )


def http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def resource_headers(stored: Stored, base: str, location: bool = False) -> dict[str, str]:
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{base}/{stored.res_type}/{stored.res_id}/_history/{stored.version}"
    return headers


def etag_matches(header: str | None, etag: str) -> bool:
    """Does an ``If-None-Match`` header name ``etag`` (weak comparison) or ``*``?"""
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False
