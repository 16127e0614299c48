"""The built-in authorization server, for sites without an identity server: SMART Backend
Services (client credentials grant with a ``private_key_jwt`` client assertion, RFC 7523) for
systems, and the authorization code grant with PKCE (S256) for the web desk's users.

A registered client signs a short JWT (RS384 or ES384, ``iss`` = ``sub`` = its client id, ``aud``
= our token endpoint, ``exp`` at most five minutes ahead, a fresh ``jti``) with its own key and
posts it to ``/auth/token``; we check it against the JWKS registered with ``fhirmwl client add``,
refuse a ``jti`` seen before, and answer an ES256 access token signed with the server key from
the store, carrying the requested scopes that the registration allows. Errors are RFC 6749 §5.2
JSON (``invalid_client`` 401, the others 400). Signing and verifying are PyJWT (see tokens.py).

Desk users log in at ``/auth/authorize`` (``security.login`` renders the form); the request is
checked here (``check_authorize``): the client id must be the desk's, the redirect URI one of the
desk callbacks this server knows (its own ``/ui/callback`` and ``auth_redirect_uris``), PKCE
``S256``. The code is single-use, lives ``CODE_LIFETIME`` seconds and is bound to client id,
redirect URI and challenge; ``/auth/token`` with ``grant_type=authorization_code`` redeems it.
With ``session_lifetime`` set, the answer also carries a refresh token (``refresh.py``):
``grant_type=refresh_token`` trades it, once, for a new access token and a new refresh token that
expires when the first one would have.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from fhirmwl.security import keystore, pkce, refresh, users
from fhirmwl.security.scopes import parse_scope, parse_scopes, within
from fhirmwl.security.tokens import LEEWAY, parse_jwks
from fhirmwl.store.db import Database

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp no more than five minutes ahead
CODE_LIFETIME = 60  # seconds an authorization code may wait for its redemption


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class AuthorizeError(OAuthError):
    """An authorization request error; ``redirect_uri`` set when it may go back to the client
    (RFC 6749 §4.1.2.1: never for an unknown client or redirect URI)."""

    def __init__(self, error: str, description: str, redirect_uri: str = "", state: str = ""):
        super().__init__(error, description)
        self.redirect_uri, self.state = redirect_uri, state


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    state: str
    challenge: str
    scope: str  # requested; empty: all the user's


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def auth_base(fhir_base: str) -> str:
    """``http://host:port/fhir`` → ``http://host:port/auth`` (the issuer of built-in tokens)."""
    return fhir_base.rstrip("/").removesuffix("/fhir") + "/auth"


@dataclass
class BuiltinServer:
    db: Database
    fhir_base: str
    lifetime: int = 300
    clock: Callable[[], float] = time.time
    user_lifetime: int = 3600  # access tokens of desk users (authorization code grant)
    desk_client_id: str = "fhirmwl-desk"
    redirect_uris: tuple[str, ...] = ()  # more desk callbacks than this broker's own
    session_lifetime: int = 0  # seconds a desk login may refresh its token (0: no refresh)

    def __post_init__(self) -> None:
        self.issuer = auth_base(self.fhir_base)
        self.token_url = f"{self.issuer}/token"
        self.authorize_url = f"{self.issuer}/authorize"
        own = f"{origin_of(self.fhir_base)}/ui/callback"
        self.allowed_redirects = (own, *(u for u in self.redirect_uris if u and u != own))
        self._key: keystore.ServerKey | None = None
        self._public: Any = None

    @property
    def key(self) -> keystore.ServerKey:
        if self._key is None:
            self._key = keystore.server_key(self.db)
        return self._key

    def public_key(self, kid: str | None) -> Any:
        if kid != self.key.kid:
            from fhirmwl.security.tokens import InvalidToken

            raise InvalidToken(f"the token's key id {kid!r} is not the built-in server's")
        if self._public is None:  # one object, so TokenValidator can tell it is the same key
            self._public = self.key.public_key()
        return self._public

    def current_key(self, kid: str | None) -> Any:
        """The public key if already loaded and ``kid`` is ours; never touches the store."""
        key = self._key
        return self._public if key is not None and kid == key.kid else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    # ---- token endpoint ---------------------------------------------------------------
    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer one token request (the form fields); raises OAuthError."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        if grant_type != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type is client_credentials, authorization_code or refresh_token",
            )
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError(
                "invalid_request", f"send client_assertion_type={ASSERTION_TYPE} and an assertion"
            )
        client, claims = self._verify_assertion(form["client_assertion"])
        allowed = parse_scopes(client.scope)
        requested = form.get("scope", "").split() or client.scope.split()
        granted = [s for s in requested if (p := parse_scope(s)) and within(p, allowed)]
        if not granted:
            raise OAuthError(
                "invalid_scope",
                f"none of {' '.join(requested)!r} is allowed for {client.client_id}",
            )
        now = int(self.clock())
        if not keystore.use_jti(self.db, client.client_id, claims["jti"], claims["exp"], now):
            raise OAuthError("invalid_client", "this client assertion (jti) was used before", 401)
        return self._mint(client.client_id, client.client_id, " ".join(granted), self.lifetime)

    def _mint(self, sub: str, client_id: str, scope: str, lifetime: int) -> dict[str, Any]:
        now = int(self.clock())
        access = jwt.encode(
            {
                "iss": self.issuer,
                "sub": sub,
                "client_id": client_id,
                "aud": self.fhir_base,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
                "jti": uuid.uuid4().hex,
                "scope": scope,
            },
            self.key.private_key,
            algorithm=keystore.SERVER_ALG,
            headers={"kid": self.key.kid, "typ": "at+jwt"},
        )
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": scope,
        }

    # ---- authorization code grant (desk users) -------------------------------------------
    def check_authorize(self, params: dict[str, str]) -> AuthorizeRequest:
        """Validate an authorization request before the login form is shown or answered."""
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id != self.desk_client_id:
            raise AuthorizeError("unauthorized_client", f"unknown client_id {client_id!r}")
        if redirect_uri not in self.allowed_redirects:
            raise AuthorizeError(
                "invalid_request",
                f"redirect_uri {redirect_uri!r} is not registered for {client_id} "
                "(this server's /ui/callback or auth_redirect_uris)",
            )
        state = params.get("state", "")

        def refuse(error: str, text: str) -> AuthorizeError:
            return AuthorizeError(error, text, redirect_uri, state)

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "response_type must be code")
        if params.get("code_challenge_method") != pkce.METHOD:
            raise refuse("invalid_request", "PKCE is required: code_challenge_method=S256")
        challenge = params.get("code_challenge", "")
        if not pkce.valid_challenge(challenge):
            raise refuse("invalid_request", "code_challenge must be 43 base64url characters")
        if len(state) > 512:
            raise refuse("invalid_request", "state is longer than 512 characters")
        return AuthorizeRequest(client_id, redirect_uri, state, challenge, params.get("scope", ""))

    def grant_code(self, request: AuthorizeRequest, user: users.User) -> str:
        """The code for ``user`` after a successful login; raises AuthorizeError (no scope)."""
        allowed = parse_scopes(user.scope)
        requested = request.scope.split() or user.scope.split()
        granted = [s for s in requested if (p := parse_scope(s)) and within(p, allowed)]
        if not granted:
            raise AuthorizeError(
                "invalid_scope",
                f"none of the requested scopes is allowed for {user.name}",
                request.redirect_uri,
                request.state,
            )
        now = int(self.clock())
        grant = users.CodeGrant(
            request.client_id,
            request.redirect_uri,
            request.challenge,
            user.name,
            " ".join(granted),
            now + CODE_LIFETIME,
        )
        return users.issue_code(self.db, grant, now)

    def _redeem(self, form: dict[str, str]) -> dict[str, Any]:
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        if not code or not verifier:
            raise OAuthError("invalid_request", "send code, code_verifier, client_id, redirect_uri")
        grant = users.redeem_code(self.db, code)
        if grant is None:
            raise OAuthError("invalid_grant", "the code is unknown or was used before")
        if grant.exp < self.clock():
            raise OAuthError("invalid_grant", f"the code expired ({CODE_LIFETIME} s)")
        if form.get("client_id") != grant.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client_id")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        if not pkce.matches(verifier, grant.challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        scope = self._user_scope(grant.username, grant.scope)
        answer = self._mint(grant.username, grant.client_id, scope, self.user_lifetime)
        if self.session_lifetime > 0:
            exp = int(self.clock()) + self.session_lifetime
            self._add_refresh(
                answer, refresh.RefreshGrant(grant.client_id, grant.username, scope, exp)
            )
        return answer

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        """``grant_type=refresh_token``: the token is taken out (single use), a new access token
        and a new refresh token with the same absolute expiry are issued."""
        if self.session_lifetime <= 0:
            raise OAuthError("unsupported_grant_type", "this server issues no refresh tokens")
        grant = refresh.take(self.db, form.get("refresh_token", ""), form.get("client_id", ""))
        if grant is None:
            raise OAuthError(
                "invalid_grant",
                "the refresh token is unknown, was used before or belongs to another client_id",
            )
        now = int(self.clock())
        if grant.exp <= now:
            raise OAuthError("invalid_grant", "the refresh token expired (the login is over)")
        scope = self._user_scope(grant.username, grant.scope)
        lifetime = min(self.user_lifetime, grant.exp - now)
        answer = self._mint(grant.username, grant.client_id, scope, lifetime)
        self._add_refresh(
            answer, refresh.RefreshGrant(grant.client_id, grant.username, scope, grant.exp)
        )
        return answer

    def _user_scope(self, username: str, granted: str) -> str:
        """The granted scopes the user still has; invalid_grant when none is left."""
        user = users.get_user(self.db, username)
        allowed = parse_scopes(user.scope) if user else []
        scope = [s for s in granted.split() if (p := parse_scope(s)) and within(p, allowed)]
        if user is None or not scope:
            raise OAuthError("invalid_grant", "the user was removed or lost the granted scopes")
        return " ".join(scope)

    def _add_refresh(self, answer: dict[str, Any], grant: refresh.RefreshGrant) -> None:
        now = int(self.clock())
        answer["refresh_token"] = refresh.issue(self.db, grant, now)
        answer["refresh_expires_in"] = grant.exp - now

    def _verify_assertion(self, assertion: str) -> tuple[keystore.Client, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"the assertion is not a JWT: {exc}", 401) from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise OAuthError(
                "invalid_client", f"assertion alg must be RS384 or ES384, not {alg!r}", 401
            )
        client_id = unverified.get("iss")
        client = keystore.get_client(self.db, client_id) if isinstance(client_id, str) else None
        if client is None:
            raise OAuthError("invalid_client", f"client {client_id!r} is not registered", 401)
        keys = parse_jwks(client.jwks)
        kid = header.get("kid")
        key = keys.get(kid) if kid else None
        if key is None and len(keys) == 1:  # one registered key: the signature decides
            key = next(iter(keys.values()))
        if key is None:
            raise OAuthError("invalid_client", f"key id {kid!r} is not registered", 401)
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.key,
                algorithms=[alg],
                audience=self.token_url,
                issuer=client.client_id,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"assertion rejected: {exc}", 401) from None
        if claims["sub"] != client.client_id:
            raise OAuthError("invalid_client", "assertion sub must equal iss (the client id)", 401)
        if claims["exp"] > self.clock() + MAX_ASSERTION_LIFETIME + LEEWAY:
            raise OAuthError("invalid_client", "assertion exp is more than 5 minutes ahead", 401)
        return client, claims

    # ---- discovery --------------------------------------------------------------------
    def _grant_types(self) -> list[str]:
        types = ["authorization_code", "client_credentials"]
        return [*types, "refresh_token"] if self.session_lifetime > 0 else types

    def metadata(self) -> dict[str, Any]:
        """Authorization server metadata (RFC 8414), served at
        ``/auth/.well-known/oauth-authorization-server``: what another broker's desk discovers."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": self._grant_types(),
            "code_challenge_methods_supported": [pkce.METHOD],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        }

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "grant_types_supported": self._grant_types(),
            "code_challenge_methods_supported": [pkce.METHOD],
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "system/Task.rs",
                "system/Subscription.c",
                "user/*.cruds",
                "patient/*.rs",
            ],
            "capabilities": [
                "client-confidential-asymmetric",
                "client-public",
                "launch-standalone",
                "permission-user",
                "permission-v2",
                "permission-v1",
            ],
        }

    def rest_security(self) -> dict[str, Any]:
        """CapabilityStatement.rest.security: SMART service code and the oauth-uris extension."""
        return {
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "token", "valueUri": self.token_url},
                        {"url": "authorize", "valueUri": self.authorize_url},
                    ],
                }
            ],
            "cors": False,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ],
                    "text": "OAuth 2.0 bearer tokens with SMART App Launch v2 scopes",
                }
            ],
            "description": "Every FHIR and DICOMweb request needs a bearer token; see "
            f"{self.fhir_base}/.well-known/smart-configuration. Backend clients get tokens "
            "with the client_credentials grant and a private_key_jwt assertion; desk users log in "
            "with the authorization code grant and PKCE.",
        }
