"""``/auth/authorize``: the login form of the built-in authorization server (desk users).

Server-rendered, no script, no patient data: a user name and a password, posted back to the
same URL with the authorization request in hidden fields. The request is checked before the
form is shown and again when it is posted (``BuiltinServer.check_authorize``). The POST is
protected against cross-site forgery like the desk's forms (a double-submit token in an
``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/auth`` plus an ``Origin`` check), failed
logins are slowed down per user name (``throttle``), and every login, good or bad, is audited as
DICOM "User Authentication" / "Login" with the user name and the peer address.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fhirmwl.api.http import form_params
from fhirmwl.errors import FhirMwlError
from fhirmwl.security import users
from fhirmwl.security.authserver import (
    AuthorizeError,
    AuthorizeRequest,
    BuiltinServer,
    origin_of,
)
from fhirmwl.security.throttle import LoginThrottle

log = logging.getLogger("fhirmwl.security")
CSRF_COOKIE = "fhirmwl_auth_csrf"
MAX_FORM_BYTES = 16 * 1024
LOGIN_CODE = ("http://dicom.nema.org/resources/ontology/DCM", "110122", "Login")
_FIELDS = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "aud"}
    | {"code_challenge", "code_challenge_method"}
)
_env = Environment(
    loader=PackageLoader("fhirmwl.security", "templates"),
    autoescape=select_autoescape(["html"], default=True),
)


def _redirect(uri: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", 303)


class LoginForm:
    def __init__(self, server: BuiltinServer, writer: Any = None) -> None:
        self.server = server
        self.writer = writer
        self.throttle = LoginThrottle()

    def _page(
        self,
        request: Request,
        status: int,
        error: str = "",
        auth: AuthorizeRequest | None = None,
        fields: dict[str, str] | None = None,
        username: str = "",
    ) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE, "")
        new = len(token) != 43
        token = secrets.token_urlsafe(32) if new else token
        nonce = secrets.token_urlsafe(16)
        html = _env.get_template("login.html").render(
            error=error,
            form={k: v for k, v in (fields or {}).items() if k in _FIELDS} if auth else None,
            csrf=token,
            nonce=nonce,
            username=username,
            client_id=auth.client_id if auth else "",
            return_to=origin_of(auth.redirect_uri) if auth else "",
        )
        targets = f" {origin_of(auth.redirect_uri)}" if auth else ""
        response = HTMLResponse(html, status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:;"
            f" form-action 'self'{targets}; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would send Origin: null
        if new:
            secure = request.url.scheme == "https"
            response.set_cookie(
                CSRF_COOKIE, token, httponly=True, samesite="strict", path="/auth", secure=secure
            )
        return response

    def _refused(self, request: Request, err: AuthorizeError) -> Response:
        if err.redirect_uri:
            return _redirect(
                err.redirect_uri,
                error=err.error,
                error_description=err.description,
                state=err.state,
            )
        return self._page(request, 400, f"This login request cannot be served: {err.description}")

    async def endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        params = dict(request.query_params)
        try:
            auth = self.server.check_authorize(params)
        except AuthorizeError as err:
            return self._refused(request, err)
        return self._page(request, 200, auth=auth, fields=params)

    async def _post(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return self._page(request, 413, "The form is too large.")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return self._page(request, 403, "Cross-origin form post refused.")
        try:
            fields = dict(await form_params(request))
        except FhirMwlError as err:
            return self._page(request, 400, err.message)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, fields.pop("csrf", "")):
            return self._page(request, 403, "The form's security token is missing or stale.")
        try:
            auth = self.server.check_authorize(fields)
        except AuthorizeError as err:
            return self._refused(request, err)
        name, password = fields.get("username", ""), fields.get("password", "")
        again = self.throttle.wait(name)
        if again > 0:
            self._audit(request, name, False, "locked after repeated failures")
            text = f"Too many failed logins for this user; try again in {int(again) + 1} s."
            return self._page(request, 429, text, auth, fields, name)
        user = await run_in_threadpool(users.authenticate, self.server.db, name, password)
        if user is None:
            self.throttle.failed(name)
            self._audit(request, name, False, "wrong user name or password")
            return self._page(request, 401, "Wrong user name or password.", auth, fields, name)
        self.throttle.succeeded(name)
        try:
            code = await run_in_threadpool(self.server.grant_code, auth, user)
        except AuthorizeError as err:
            self._audit(request, name, False, err.description)
            return self._refused(request, err)
        self._audit(request, name, True, "")
        log.info("desk login of %s for %s", name, auth.client_id)
        return _redirect(auth.redirect_uri, code=code, state=auth.state)

    def _audit(self, request: Request, name: str, ok: bool, text: str) -> None:
        if self.writer is None:
            return
        from fhirmwl.audit import events as ev
        from fhirmwl.audit.recorder import AccessContext

        client = request.client
        ctx = AccessContext(
            door="http",
            action="E",
            category=ev.USER_AUTHENTICATION,
            code=LOGIN_CODE,
            agent_id=name[:64] or "anonymous",
            agent_network=f"{client.host}:{client.port}" if client else "",
            details={"method": request.method, "path": "/auth/authorize"},
        )
        self.writer.submit(ctx.record(ev.SUCCESS if ok else ev.MINOR_FAILURE, text))


def routes(services: Any) -> list[BaseRoute]:
    """``/auth/authorize`` when authentication is on (the built-in server is there)."""
    if services.auth is None:
        return []
    from fhirmwl.audit import writer_of

    form = LoginForm(services.auth[1], writer_of(services))
    return [Route("/auth/authorize", form.endpoint, methods=["GET", "POST"])]
