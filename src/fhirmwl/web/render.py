"""HTML rendering for the desk: one Jinja2 environment with autoescaping, plus small formatters.

Every string a peer sent (patient names from HL7, AE titles, resource JSON) reaches the page
through Jinja2's autoescape, never through string concatenation, so a ``<script>`` patient name
renders as text. Jinja2 is used rather than hand-built HTML because escaping by default is the
property that matters on a page full of untrusted strings.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

CSRF_COOKIE = "fhirmwl_desk_csrf"

_env = Environment(
    loader=PackageLoader("fhirmwl.web", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def person_name(value: Any) -> str:
    """A DICOM PN (``Family^Given^Middle^Prefix^Suffix``, groups split by ``=``) for reading:
    ``Family, Given Middle`` per group, groups joined by `` = `` (alphabetic = ideographic =
    phonetic)."""
    groups = []
    for group in str(value or "").split("="):
        parts = [p for p in group.split("^")]
        family = parts[0] if parts else ""
        rest = " ".join(p for p in parts[1:3] if p)
        text = f"{family}, {rest}" if family and rest else family or rest
        groups.append(text.strip())
    return " = ".join(g for g in groups if g)


def dicom_date(value: Any) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else text


def dicom_time(value: Any) -> str:
    text = str(value or "")
    return f"{text[:2]}:{text[2:4]}" if len(text) >= 4 and text[:4].isdigit() else text


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` as a URL query; empty values are left out except ``date``
    (an empty date means "any day", its absence "today")."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "") or k == "date"})


_env.filters.update(pn=person_name, da=dicom_date, tm=dicom_time)
_env.globals.update(qs=query_string)


def csrf_token(request: Request) -> tuple[str, bool]:
    """The double-submit token of this browser (``(token, is_new)``)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43:
        return current, False
    return secrets.token_urlsafe(32), True


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the CSRF token for its forms; sets the token cookie once."""
    token, new = csrf_token(request)
    state = request.scope.get("state")
    user = state.get("desk_user") if isinstance(state, dict) else None
    html = _env.get_template(template).render(
        request=request, csrf=token, desk_user=user, why_not=_refusals(user), **context
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if new:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui", max_age=86400 * 30
        )
    return response


def _refusals(user: Any) -> Callable[[str], str | None]:
    """``why_not(what)`` for the templates: why the logged-in user may not do ``what`` (a
    ``guard.NEEDS`` key), or None. A page shows an action's form only to users who may use it,
    and says which scope is missing instead (the action itself still checks: ``guard.require``).
    """
    from fhirmwl.web.guard import refusal  # guard imports the login, which renders pages

    def why_not(what: str) -> str | None:
        return None if user is None else refusal(user, what)

    return why_not


def fragment(template: str, **context: Any) -> str:
    """A template rendered without the page frame (live updates fetch these)."""
    return _env.get_template(template).render(**context)
