"""CSRF protection for the desk's POST forms: double-submit token plus an Origin check.

Every page sets an HttpOnly ``SameSite=Strict`` cookie holding a random token and embeds the same
token in its forms; a POST is accepted only when the form field equals the cookie (compared in
constant time) and, when the browser sends ``Origin``, that origin is this server. A page on
another site can neither read the token nor send the cookie, so it cannot forge an action.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request

from fhirmwl.api.http import form_params
from fhirmwl.errors import FhirMwlError
from fhirmwl.web.render import CSRF_COOKIE

MAX_FORM_BYTES = 64 * 1024


class Forbidden(FhirMwlError):
    http_status = 403
    issue_code = "forbidden"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers and non-browser clients; the token still decides
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def checked_form(request: Request) -> dict[str, str]:
    """The form fields of a POST, after the CSRF checks (raises :class:`Forbidden`)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise Forbidden(f"form larger than {MAX_FORM_BYTES} bytes")
    if not _same_origin(request):
        raise Forbidden("cross-origin form post refused (Origin does not match this server)")
    fields = dict(await form_params(request))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    token = fields.pop("csrf", "")
    if not cookie or not token or not secrets.compare_digest(cookie, token):
        raise Forbidden("the form's security token is missing or stale; reload the page")
    return fields
