"""The trust boundary of the broker: OAuth 2.0 bearer tokens with SMART scopes on the HTTP door
(docs/auth.md), and in the submodules TLS contexts, the start-up security posture, outbound
endpoint checks and the resource limits every door enforces (docs/security.md).

``install`` (from ``plugins.install_all``) registers the store tables of the built-in
authorization server and, when authentication is on, builds the token validator;
``auth_middleware`` (from ``api.app.create_app``) puts the middleware in front of the routes.
Authentication is on when ``auth = "builtin"`` or an external issuer's ``auth_jwks`` is set;
it is off by default so that the demo on loopback stays one command.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from starlette.middleware import Middleware

from fhirmwl.errors import BadRequest

if TYPE_CHECKING:
    from fhirmwl.config import Settings
    from fhirmwl.services.container import Services


log = logging.getLogger("fhirmwl.security")


def auth_enabled(settings: Settings) -> bool:
    return settings.auth == "builtin" or bool(settings.auth_jwks)


def _check(settings: Settings) -> None:
    if settings.auth not in ("", "builtin"):
        raise BadRequest(f"auth must be empty or 'builtin', not {settings.auth!r}")
    if bool(settings.auth_jwks) != bool(settings.auth_issuer):
        raise BadRequest("auth_jwks and auth_issuer go together (--auth-jwks with --auth-issuer)")
    jwks = settings.auth_jwks
    if jwks and not jwks.startswith(("http://", "https://")) and not os.path.isfile(jwks):
        raise BadRequest(f"auth_jwks {jwks!r} is neither an http(s) URL nor a readable file")
    if settings.auth_token_lifetime < 1 or settings.auth_user_token_lifetime < 1:
        raise BadRequest("auth_token_lifetime and auth_user_token_lifetime are at least 1 second")
    if settings.auth_user_session_lifetime < 0:
        raise BadRequest("auth_user_session_lifetime is 0 (no refresh tokens) or more seconds")
    for url in filter(None, (u.strip() for u in settings.auth_redirect_uris.split(","))):
        if not url.startswith(("http://", "https://")) or "#" in url:
            raise BadRequest(f"auth_redirect_uris: {url!r} is not an absolute http(s) URL")


def install(services: Services) -> None:
    from fhirmwl.security import keystore, users

    settings = services.settings
    _check(settings)
    keystore.register_migration()
    users.register_migration()
    if not auth_enabled(settings):
        return
    from fhirmwl.security.authserver import BuiltinServer
    from fhirmwl.security.tokens import JwksSource, TokenValidator, TrustedIssuer

    builtin = BuiltinServer(
        services.store.db,
        settings.fhir_base,
        settings.auth_token_lifetime,
        user_lifetime=settings.auth_user_token_lifetime,
        desk_client_id=settings.auth_desk_client_id,
        redirect_uris=tuple(u.strip() for u in settings.auth_redirect_uris.split(",")),
        session_lifetime=settings.auth_user_session_lifetime,
    )
    validator = TokenValidator()
    validator.add(
        TrustedIssuer(
            builtin.issuer, settings.fhir_base, builtin.public_key, ("ES256",), builtin.current_key
        )
    )
    if settings.auth_jwks:
        audience = settings.auth_audience or settings.fhir_base
        source = JwksSource(settings.auth_jwks)
        validator.add(
            TrustedIssuer(settings.auth_issuer, audience, source.key, current=source.current)
        )
    trusted = " and ".join(validator.issuers)
    log.info("bearer tokens required on /fhir and /dicomweb (issuers: %s)", trusted)
    services.auth = (validator, builtin)
    services.rest_security = builtin.rest_security()


def auth_middleware(services: Services) -> list[Middleware]:
    """The bearer-token middleware when authentication is on (innermost: after audit)."""
    if services.auth is None:
        return []
    from fhirmwl.security.middleware import AuthMiddleware

    validator, builtin = services.auth
    return [Middleware(AuthMiddleware, validator=validator, builtin=builtin)]
