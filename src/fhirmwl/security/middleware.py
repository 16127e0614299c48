"""The bearer-token door in front of ``/fhir`` and ``/dicomweb``, as a pure ASGI middleware.

A middleware rather than checks inside the routes so that every route (also the operations and
routes other features add later) is covered without being edited, and the routes stay unaware of
tokens. It also answers the three public endpoints of the built-in server: ``/auth/token``,
``/auth/jwks``, ``/fhir/.well-known/smart-configuration`` and the server metadata
``/auth/.well-known/oauth-authorization-server``. ``/fhir/metadata`` passes without a token.
Other paths (the login form ``security.login``, the web desk with its session
``web.session``) are not this door's business.

Order of checks: a token (401 ``WWW-Authenticate: Bearer`` + OperationOutcome when missing or
invalid), then the scopes for what the request does (403 naming the missing scope), then, for
requests only ``patient/`` scopes allow, the patient compartment (the search is narrowed to the
token's ``patient`` by one more query parameter, see ``access.patient_filter``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from fhirmwl.api.http import fhir_response
from fhirmwl.errors import FhirMwlError
from fhirmwl.fhir.outcome import from_error
from fhirmwl.security.access import (
    Access,
    Confinement,
    Forbidden,
    Unauthorized,
    classify,
    dicomweb_access,
    names_patient,
    patient_filter,
)
from fhirmwl.security.authserver import BuiltinServer, OAuthError
from fhirmwl.security.scopes import authorize, parse_scopes
from fhirmwl.security.tokens import InvalidToken, TokenValidator, token_scopes

log = logging.getLogger("fhirmwl.security")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
MAX_FORM_BYTES = 64 * 1024
REALM = 'Bearer realm="fhirmwl"'


def _error(err: FhirMwlError, scope_needed: str | None = None) -> Response:
    headers: dict[str, str] = {}
    if isinstance(err, InvalidToken):
        headers["WWW-Authenticate"] = f'{REALM}, error="invalid_token"'
    elif isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = REALM
    elif scope_needed:
        headers["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope", scope="{scope_needed}"'
    return fhir_response(from_error(err), err.http_status, headers)


async def _read_body(receive: Receive, limit: int | None = None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise OAuthError("invalid_request", "the request body is too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class AuthMiddleware:
    def __init__(self, app: Any, validator: TokenValidator, builtin: BuiltinServer) -> None:
        self.app = app
        self.validator = validator
        self.builtin = builtin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        special = self._public(path, method)
        response: Response | None
        check: Confinement | None = None
        if special is not None:
            response = await special(receive)
        elif path == "/fhir" or path.startswith("/fhir/"):
            response, receive, check = await self._fhir(scope, receive)
        elif path == "/dicomweb" or path.startswith("/dicomweb/"):
            response = await self._check(scope, dicomweb_access())
        else:
            response = None
        if response is not None:
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send if check is None else _confined(send, check))

    def _public(self, path: str, method: str) -> Callable[[Receive], Awaitable[Response]] | None:
        if path == "/auth/token" and method == "POST":
            return self._token
        if method not in ("GET", "HEAD"):
            return None
        if path == "/auth/jwks":
            return self._json(self.builtin.jwks)
        if path == "/auth/.well-known/oauth-authorization-server":
            return self._json(self.builtin.metadata)
        if path == "/fhir/.well-known/smart-configuration":
            return self._json(self.builtin.smart_configuration)
        return None

    @staticmethod
    def _json(fn: Callable[[], dict[str, Any]]) -> Callable[[Receive], Awaitable[Response]]:
        async def answer(_: Receive) -> Response:
            return JSONResponse(await run_in_threadpool(fn))

        return answer

    async def _token(self, receive: Receive) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            raw = await _read_body(receive, MAX_FORM_BYTES)
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
            body = await run_in_threadpool(self.builtin.token, form)
        except OAuthError as err:
            return JSONResponse(err.body(), err.status, headers)
        except FhirMwlError as err:  # the store failed: RFC 6749 has no code but server_error
            log.error("token endpoint: %s", err.message)
            error = {"error": "server_error", "error_description": err.message}
            return JSONResponse(error, 500, headers)
        return JSONResponse(body, 200, headers)

    async def _fhir(
        self, scope: Scope, receive: Receive
    ) -> tuple[Response | None, Receive, Confinement | None]:
        parts = [p for p in scope["path"][len("/fhir") :].split("/") if p]
        method = scope["method"]
        if classify(method, parts).kind == "public":
            return None, receive, None
        claims = await self._authenticate(scope)
        if isinstance(claims, Response):
            return claims, receive, None  # before reading any body: strangers cannot make us buffer
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = None
        if not parts and method == "POST":
            raw = await _read_body(receive)
            receive = _replay(raw)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None  # the API answers 400 for it
        try:
            access = classify(method, parts, params, headers, body)
        except FhirMwlError as err:
            return _error(err), receive, None
        answer = self._authorize(scope, access, claims)
        if isinstance(answer, Confinement):
            return None, receive, answer
        return answer, receive, None

    async def _check(self, scope: Scope, access: Access) -> Response | None:
        claims = await self._authenticate(scope)
        if isinstance(claims, Response):
            return claims
        answer = self._authorize(scope, access, claims)
        return answer if isinstance(answer, Response) else None  # DICOMweb: no confinement

    async def _authenticate(self, scope: Scope) -> dict[str, Any] | Response:
        """The verified claims of the request's bearer token, or the 401 answer."""
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return _error(Unauthorized("this server needs an OAuth 2.0 bearer token"))
        try:
            token = token.strip()
            claims = self.validator.remembered(token)
            if claims is None:  # not seen before: verify in a thread (the JWKS may be fetched)
                claims = await run_in_threadpool(self.validator.validate, token)
        except FhirMwlError as err:
            log.info("401 on %s %s: %s", scope["method"], scope["path"], err.message)
            return _error(err)
        return claims

    def _authorize(
        self, scope: Scope, access: Access, claims: dict[str, Any]
    ) -> Response | Confinement | None:
        """A refusal, or None / a Confinement of the answer to let the request through."""
        decision = authorize(parse_scopes(token_scopes(claims)), access.needs)
        if not decision.allowed:
            assert decision.missing is not None
            wanted = decision.missing.scope()
            log.info(
                "403 for %s on %s %s: no %s",
                claims.get("sub"),
                scope["method"],
                scope["path"],
                wanted,
            )
            return _error(Forbidden(f"the access token lacks the scope {wanted}"), wanted)
        if decision.patient_only:
            try:
                confinement = patient_filter(access, _claim(claims, "patient"))
            except Forbidden as err:
                return _error(err)
            if confinement is not None and confinement.param is not None:
                query = scope.get("query_string", b"").decode("latin-1")
                narrowed = "&".join(q for q in (query, urlencode([confinement.param])) if q)
                scope["query_string"] = narrowed.encode("latin-1")
                confinement = None
        scope.setdefault("state", {})["auth_claims"] = claims
        return confinement if decision.patient_only else None


def _confined(send: Send, check: Confinement) -> Send:
    """Hold back a read's answer until it is known to name the token's patient; else 403."""
    start: MutableMapping[str, Any] | None = None
    chunks: list[bytes] = []

    async def confined_send(message: MutableMapping[str, Any]) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        if start["status"] == 200 and not _in_compartment(body, check):
            refusal = _error(Forbidden("this resource is not in the patient's compartment"))
            start = {"type": "http.response.start", "status": 403, "headers": refusal.raw_headers}
            body = bytes(refusal.body)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return confined_send


def _in_compartment(body: bytes, check: Confinement) -> bool:
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return check.element is not None and names_patient(resource, check.element, check.reference)


def _claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
