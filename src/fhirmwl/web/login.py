"""The desk as an OAuth 2.0 client: authorization code grant with PKCE (S256), public client.

``/ui/login`` stores a pending login (``state`` and the PKCE verifier, server-side, bound to the
browser by an ``HttpOnly`` cookie holding the state) and sends the browser to the authorization
endpoint; ``/ui/callback`` checks the state against the cookie, exchanges the code with the
verifier, validates the access token with the broker's own token validator (the one in front of
``/fhir``) and opens a session (``web.session``); ``/ui/logout`` ends it. When the token answer
carries a refresh token, the session lasts ``auth_user_session_lifetime`` (or less, when the
server says its refresh token expires sooner): an expired access token is traded for a new one
on the next request (``grant_type=refresh_token``), and the session ends when the server refuses
(the login is over, the user was removed or changed).

Which authorization server: with ``auth_jwks``/``auth_issuer`` set, the external issuer, whose
authorization and token endpoints come from ``auth_authorize_url``/``auth_token_url`` or are
discovered (``/.well-known/openid-configuration``, then ``/.well-known/oauth-authorization-server``
under the issuer URL, then ``/.well-known/smart-configuration`` under the audience when that is
a FHIR base URL); otherwise the built-in server, whose token endpoint is called in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fhirmwl.errors import FhirMwlError
from fhirmwl.security import pkce
from fhirmwl.security.access import Unauthorized
from fhirmwl.security.authserver import OAuthError, origin_of
from fhirmwl.security.scopes import Scope, parse_scopes
from fhirmwl.security.tokens import InvalidToken, token_scopes
from fhirmwl.web.csrf import checked_form
from fhirmwl.web.render import page
from fhirmwl.web.session import LOGIN, SESSION, SessionStore

log = logging.getLogger("fhirmwl.web")
SESSION_COOKIE = "fhirmwl_desk_session"
LOGIN_COOKIE = "fhirmwl_desk_login"
LOGIN_WAIT = 600  # seconds a started login may take at the authorization server
# seconds a refresh that lost a race waits for the winner to store its new token (a refused
# refresh that lost no race, the end of a login, waits as long before the session ends)
RACE_WAIT = 2.0


@dataclass(frozen=True)
class DeskUser:
    name: str
    scopes: list[Scope]
    exp: int
    claims: dict[str, Any] = field(repr=False)


def safe_next(value: str) -> str:
    """Only desk pages of this server are returned to after a login (no open redirect)."""
    if value.startswith("/ui/") and not value.startswith("/ui//") and "\\" not in value:
        return value
    return "/ui/worklist"


class LoginFailed(Unauthorized):
    """The login did not complete (shown on the desk's login page, 401)."""


class DeskLogin:
    def __init__(self, services: Any) -> None:
        settings = services.settings
        self.validator, self.builtin = services.auth
        self.sessions = SessionStore(services.store.db)
        self.external = bool(settings.auth_jwks)
        self.client_id = settings.auth_desk_client_id
        self.scope = " ".join(settings.auth_desk_scope.split())
        self.issuer = settings.auth_issuer.rstrip("/")
        self.audience = settings.auth_audience or settings.fhir_base
        self.redirect_uri = f"{origin_of(settings.fhir_base)}/ui/callback"
        self.secure = settings.fhir_base.startswith("https://")
        self._authorize_url = settings.auth_authorize_url
        self._token_url = settings.auth_token_url
        self.session_lifetime = settings.auth_user_session_lifetime
        self._lock = threading.Lock()

    # ---- endpoints ---------------------------------------------------------------------
    def endpoints(self) -> tuple[str, str]:
        """(authorization endpoint, token endpoint); discovered once for an external issuer."""
        if not self.external:
            return self.builtin.authorize_url, self.builtin.token_url
        with self._lock:
            if not (self._authorize_url and self._token_url):
                found = self._discover()
                self._authorize_url = self._authorize_url or found.get("authorization_endpoint", "")
                self._token_url = self._token_url or found.get("token_endpoint", "")
            if not (self._authorize_url and self._token_url):
                raise LoginFailed(
                    "the issuer publishes no authorization/token endpoint; set "
                    "auth_authorize_url and auth_token_url"
                )
            return self._authorize_url, self._token_url

    def _discover(self) -> dict[str, Any]:
        candidates = [
            f"{self.issuer}/.well-known/{suffix}"
            for suffix in ("openid-configuration", "oauth-authorization-server")
        ]
        if self.audience.startswith(("http://", "https://")):  # a SMART FHIR server's base
            candidates.append(f"{self.audience.rstrip('/')}/.well-known/smart-configuration")
        for url in candidates:
            try:
                answer = httpx.get(url, timeout=10, follow_redirects=False)
                if answer.status_code == 200:
                    data = answer.json()
                    if isinstance(data, dict):
                        return data
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("desk login: cannot read %s: %s", url, exc)
        return {}

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        return self._token_request(form)

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        if not self.external:
            try:
                return self.builtin.token(form)
            except OAuthError as err:
                raise LoginFailed(f"the token request was refused: {err.description}") from None
        _, token_url = self.endpoints()
        try:
            answer = httpx.post(token_url, data=form, timeout=30, follow_redirects=False)
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LoginFailed(f"the token endpoint {token_url} did not answer: {exc}") from None
        if answer.status_code != 200 or not isinstance(body, dict):
            found = body if isinstance(body, dict) else {}
            reason = found.get("error_description") or found.get("error") or ""
            raise LoginFailed(f"the token request was refused ({answer.status_code}): {reason}")
        return body

    # ---- the current user --------------------------------------------------------------
    async def current(self, request: Request) -> DeskUser | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        if not sid:
            return None
        data = await run_in_threadpool(self.sessions.get, SESSION, sid)
        if data is None:
            return None
        token = str(data.get("token", ""))
        claims: dict[str, Any] | None = None
        why = "the access token expired"
        try:
            claims = self.validator.remembered(token)
            if claims is None:
                claims = await run_in_threadpool(self.validator.validate, token)
        except InvalidToken as err:
            why = err.message
        # Refreshed once expired, not only once the validator's clock-skew leeway is over too.
        if data.get("refresh") and (claims is None or int(claims["exp"]) <= time.time()):
            claims = await run_in_threadpool(self._refresh, sid, data)
        if claims is None:
            log.info("desk session ended: %s", why)
            await run_in_threadpool(self.sessions.drop, sid)
            return None
        name = str(claims.get("preferred_username") or claims.get("sub") or "")
        return DeskUser(name, parse_scopes(token_scopes(claims)), int(claims["exp"]), claims)

    def _refresh(self, sid: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Trade the session's refresh token for a new access token; its claims, or None when
        the session is over. Two requests of one browser may race here: the refresh token is
        single use, so the loser's request is refused while the winner is still storing its new
        token; the loser waits for it (up to ``RACE_WAIT`` seconds) and takes that."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(data["refresh"]),
            "client_id": self.client_id,
        }
        try:
            answer = self._token_request(form)
            token = str(answer.get("access_token", ""))
            claims = self.validator.validate(token)
        except (FhirMwlError, InvalidToken) as err:
            deadline = time.monotonic() + RACE_WAIT
            while (now := self.sessions.get(SESSION, sid)) is not None:
                if now.get("refresh") != data.get("refresh"):  # another request refreshed it
                    try:
                        return self.validator.validate(str(now.get("token", "")))
                    except InvalidToken:
                        return None
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            log.info("desk session not refreshed: %s", getattr(err, "message", err))
            return None
        renewed = {"token": token, "refresh": answer.get("refresh_token") or data["refresh"]}
        self.sessions.replace(SESSION, sid, renewed)
        log.info("desk session refreshed for %s", claims.get("sub"))
        return claims

    def _session_end(self, answer: dict[str, Any], token_exp: int) -> int:
        """When a new session ends: with a refresh token, after the session lifetime (or the
        refresh token's own expiry when the server gives it); otherwise with the token."""
        if not answer.get("refresh_token") or self.session_lifetime <= 0:
            return token_exp
        lifetime = self.session_lifetime
        given = answer.get("refresh_expires_in")
        if isinstance(given, int) and given > 0:
            lifetime = min(lifetime, given)
        return max(token_exp, int(time.time()) + lifetime)

    # ---- routes ------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        try:
            authorize_url, _ = await run_in_threadpool(self.endpoints)
        except FhirMwlError as err:
            return self._failed(request, err)
        verifier = pkce.new_verifier()
        target = safe_next(request.query_params.get("next", ""))
        state = await run_in_threadpool(
            self.sessions.put,
            LOGIN,
            {"verifier": verifier, "next": target},
            int(time.time()) + LOGIN_WAIT,
        )
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": pkce.challenge(verifier),
            "code_challenge_method": pkce.METHOD,
            "aud": self.audience,
        }
        if self.scope:
            params["scope"] = self.scope
        sep = "&" if "?" in authorize_url else "?"
        response = RedirectResponse(f"{authorize_url}{sep}{urlencode(params)}", 303)
        response.set_cookie(
            LOGIN_COOKIE,
            state,
            max_age=LOGIN_WAIT,
            path="/ui",
            httponly=True,
            samesite="lax",  # sent when the authorization server redirects back (top-level GET)
            secure=self.secure,
        )
        return response

    async def callback(self, request: Request) -> Response:
        params = request.query_params
        state, cookie = params.get("state", ""), request.cookies.get(LOGIN_COOKIE, "")
        try:
            if not state or state != cookie:
                raise LoginFailed("this login was not started in this browser; log in again")
            pending = await run_in_threadpool(self.sessions.take, LOGIN, state)
            if pending is None:
                raise LoginFailed("this login expired or was completed before; log in again")
            if params.get("error"):
                text = params.get("error_description") or params["error"]
                raise LoginFailed(f"the authorization server refused the login: {text}")
            answer = await run_in_threadpool(
                self._exchange, params.get("code", ""), str(pending["verifier"])
            )
            token = str(answer.get("access_token", ""))
            try:
                claims = await run_in_threadpool(self.validator.validate, token)
            except InvalidToken as err:
                raise LoginFailed(f"the access token is not accepted: {err.message}") from None
        except FhirMwlError as err:
            return self._failed(request, err)
        exp = self._session_end(answer, int(claims["exp"]))
        previous = request.cookies.get(SESSION_COOKIE, "")
        if previous:  # a new login replaces this browser's old session
            await run_in_threadpool(self.sessions.drop, previous)
        data: dict[str, Any] = {"token": token}
        if answer.get("refresh_token") and self.session_lifetime > 0:
            data["refresh"] = str(answer["refresh_token"])
        sid = await run_in_threadpool(self.sessions.put, SESSION, data, exp)
        log.info("desk session opened for %s", claims.get("sub"))
        response = RedirectResponse(safe_next(str(pending.get("next", ""))), 303)
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=max(1, exp - int(time.time())),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    async def logout(self, request: Request) -> Response:
        try:
            await checked_form(request)
        except FhirMwlError as err:
            return self._failed(request, err)
        sid = request.cookies.get(SESSION_COOKIE, "")
        await run_in_threadpool(self.sessions.drop, sid)
        response = page(request, "logged_out.html", title="Logged out", nav="", failed=None)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def _failed(self, request: Request, err: FhirMwlError) -> Response:
        log.info("desk login failed: %s", err.message)
        return page(
            request, "logged_out.html", err.http_status, title="Login failed", nav="", failed=err
        )
