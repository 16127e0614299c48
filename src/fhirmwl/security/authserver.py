"""The built-in authorization server: SMART Backend Services (client credentials grant with a
``private_key_jwt`` client assertion, RFC 7523), for sites without an identity server.

A registered client signs a short JWT (RS384 or ES384, ``iss`` = ``sub`` = its client id, ``aud``
= our token endpoint, ``exp`` at most five minutes ahead, a fresh ``jti``) with its own key and
posts it to ``/auth/token``; we check it against the JWKS registered with ``fhirmwl client add``,
refuse a ``jti`` seen before, and answer an ES256 access token signed with the server key from
the store, carrying the requested scopes that the registration allows. Errors are RFC 6749 §5.2
JSON (``invalid_client`` 401, the others 400). Signing and verifying are PyJWT (see tokens.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from fhirmwl.security import keystore
from fhirmwl.security.scopes import parse_scope, parse_scopes, within
from fhirmwl.security.tokens import LEEWAY, parse_jwks
from fhirmwl.store.db import Database

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp no more than five minutes ahead


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def auth_base(fhir_base: str) -> str:
    """``http://host:port/fhir`` → ``http://host:port/auth`` (the issuer of built-in tokens)."""
    return fhir_base.rstrip("/").removesuffix("/fhir") + "/auth"


@dataclass
class BuiltinServer:
    db: Database
    fhir_base: str
    lifetime: int = 300
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.issuer = auth_base(self.fhir_base)
        self.token_url = f"{self.issuer}/token"
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
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials")
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
        scope = " ".join(granted)
        access = jwt.encode(
            {
                "iss": self.issuer,
                "sub": client.client_id,
                "client_id": client.client_id,
                "aud": self.fhir_base,
                "iat": now,
                "nbf": now,
                "exp": now + self.lifetime,
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
            "expires_in": self.lifetime,
            "scope": scope,
        }

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
    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "token_endpoint": self.token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "system/Task.rs",
                "system/Subscription.c",
                "user/*.cruds",
                "patient/*.rs",
            ],
            "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"],
        }

    def rest_security(self) -> dict[str, Any]:
        """CapabilityStatement.rest.security: SMART service code and the oauth-uris extension."""
        return {
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": self.token_url}],
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
            "with the client_credentials grant and a private_key_jwt assertion.",
        }
