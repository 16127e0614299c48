"""The authorization code grant of the built-in server, called directly on a real store (SQLite
and PostgreSQL): request checks, single-use short-lived codes bound to client, redirect URI and
PKCE challenge, scopes narrowed to the user's, and the access token the REST validator accepts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from fhirmwl.errors import Conflict, NotFound
from fhirmwl.security import keystore, pkce, users
from fhirmwl.security.authserver import (
    CODE_LIFETIME,
    AuthorizeError,
    BuiltinServer,
    OAuthError,
)
from fhirmwl.security.tokens import TokenValidator, TrustedIssuer
from fhirmwl.store.db import Database, open_database
from fhirmwl.store.migrations import migrate

BASE = "http://127.0.0.1:8080/fhir"
CALLBACK = "http://127.0.0.1:8080/ui/callback"
OTHER = "http://desk.example.org:9000/ui/callback"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # the validator checks iat/exp against the real clock

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    keystore.register_migration()
    users.register_migration()
    migrate(database)
    users.add_user(database, "reader", "reader-password", "user/*.rs")
    users.add_user(database, "writer", "writer-password", "user/*.cruds user/Task.rs")
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(db: Database, clock: Clock) -> BuiltinServer:
    return BuiltinServer(db, BASE, clock=clock, user_lifetime=600, redirect_uris=(OTHER,))


def _request(verifier: str, **changes: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "fhirmwl-desk",
        "redirect_uri": CALLBACK,
        "state": "s1",
        "code_challenge": pkce.challenge(verifier),
        "code_challenge_method": "S256",
    }
    return {**params, **changes}


def _code(server: BuiltinServer, verifier: str, user: str = "reader", **changes: str) -> str:
    request = server.check_authorize(_request(verifier, **changes))
    found = users.get_user(server.db, user)
    assert found is not None
    return server.grant_code(request, found)


def _redeem(server: BuiltinServer, code: str, verifier: str, **changes: str) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "fhirmwl-desk",
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    return server.token({**form, **changes})


def test_code_is_exchanged_once_for_a_token_the_api_accepts(server: BuiltinServer) -> None:
    verifier = pkce.new_verifier()
    code = _code(server, verifier)
    answer = _redeem(server, code, verifier)
    assert answer["scope"] == "user/*.rs" and answer["expires_in"] == 600
    validator = TokenValidator()
    validator.add(TrustedIssuer(server.issuer, BASE, server.public_key, ("ES256",)))
    claims = validator.validate(answer["access_token"])
    assert claims["sub"] == "reader" and claims["client_id"] == "fhirmwl-desk"
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(OAuthError) as again:
        _redeem(server, code, verifier)
    assert again.value.error == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"client_id": "someone-else"}, "another client_id"),
        ({"redirect_uri": OTHER}, "redirect_uri differs"),
        ({"code_verifier": pkce.new_verifier()}, "does not match"),
    ],
)
def test_code_is_bound_to_client_redirect_and_verifier(
    server: BuiltinServer, change: dict[str, str], text: str
) -> None:
    verifier = pkce.new_verifier()
    code = _code(server, verifier)
    with pytest.raises(OAuthError) as refused:
        _redeem(server, code, verifier, **change)
    assert refused.value.error == "invalid_grant" and text in refused.value.description
    with pytest.raises(OAuthError):  # a failed attempt used the code up
        _redeem(server, code, verifier)


def test_code_expires(server: BuiltinServer, clock: Clock) -> None:
    verifier = pkce.new_verifier()
    code = _code(server, verifier)
    clock.now += CODE_LIFETIME + 1
    with pytest.raises(OAuthError, match="expired"):
        _redeem(server, code, verifier)


def test_authorize_request_checks(server: BuiltinServer) -> None:
    verifier = pkce.new_verifier()
    assert server.check_authorize(_request(verifier, redirect_uri=OTHER)).redirect_uri == OTHER
    for change, error, redirect in [
        ({"client_id": "evil"}, "unauthorized_client", False),
        ({"redirect_uri": "http://evil.example/cb"}, "invalid_request", False),
        ({"code_challenge_method": "plain"}, "invalid_request", True),
        ({"code_challenge_method": ""}, "invalid_request", True),
        ({"code_challenge": "short"}, "invalid_request", True),
        ({"response_type": "token"}, "unsupported_response_type", True),
    ]:
        with pytest.raises(AuthorizeError) as refused:
            server.check_authorize(_request(verifier, **change))
        assert refused.value.error == error
        assert bool(refused.value.redirect_uri) is redirect, change


def test_scopes_are_narrowed_to_the_user(server: BuiltinServer, db: Database) -> None:
    verifier = pkce.new_verifier()
    code = _code(server, verifier, "writer", scope="user/Task.rs user/Patient.cud system/*.rs")
    assert _redeem(server, code, verifier)["scope"] == "user/Task.rs user/Patient.cud"
    with pytest.raises(AuthorizeError) as refused:
        _code(server, verifier, "reader", scope="user/Task.u")
    assert refused.value.error == "invalid_scope" and refused.value.redirect_uri == CALLBACK
    code = _code(server, verifier, "reader")
    users.remove_user(db, "reader")  # removed between login and redemption: its codes go too
    with pytest.raises(OAuthError, match="unknown"):
        _redeem(server, code, verifier)


def test_users_store(db: Database) -> None:
    assert users.authenticate(db, "reader", "reader-password") is not None
    assert users.authenticate(db, "reader", "wrong-password") is None
    assert users.authenticate(db, "nobody", "reader-password") is None
    assert [u.name for u in users.list_users(db)] == ["reader", "writer"]
    with pytest.raises(Conflict):
        users.add_user(db, "reader", "another-password", "user/*.rs")
    with pytest.raises(Exception, match="8 to"):
        users.add_user(db, "shorty", "short", "user/*.rs")
    with pytest.raises(Exception, match="no SMART scope"):
        users.add_user(db, "noscope", "long-enough", "openid")
    with db.transaction(write=False) as conn:
        stored = conn.execute("SELECT password_hash FROM auth_user").fetchall()
    assert all(row[0].startswith("scrypt$") and "password" not in row[0] for row in stored)


def test_users_are_changed_in_place(db: Database) -> None:
    changed = users.change_user(db, "reader", password="a-new-password", scope="user/Task.rs")
    assert changed.scope == "user/Task.rs"
    assert users.authenticate(db, "reader", "reader-password") is None
    assert users.authenticate(db, "reader", "a-new-password") is not None
    with pytest.raises(NotFound):
        users.change_user(db, "nobody", scope="user/*.rs")
    with pytest.raises(Exception, match="no SMART scope"):
        users.change_user(db, "reader", scope="openid")
    with pytest.raises(Exception, match="8 to"):
        users.change_user(db, "reader", password="short")
    assert users.get_user(db, "reader") == changed  # nothing changed by the refused calls


def test_client_credentials_still_answer(server: BuiltinServer) -> None:
    with pytest.raises(OAuthError) as refused:
        server.token({"grant_type": "password"})
    assert refused.value.error == "unsupported_grant_type"
    with pytest.raises(OAuthError) as missing:
        server.token({"grant_type": "client_credentials"})
    assert missing.value.error == "invalid_request"


def test_one_token_per_code_under_a_race(db_url: str, db: Database, clock: Clock) -> None:
    """Four processes (one connection pool each) redeem the same code at once: one wins."""
    from tests.integration.security.test_keystore import _race

    databases = [open_database(db_url) for _ in range(4)]
    servers = [BuiltinServer(d, BASE, clock=clock) for d in databases]
    verifier = pkce.new_verifier()
    code = _code(servers[0], verifier)

    def redeem(i: int) -> str:
        try:
            return str(_redeem(servers[i], code, verifier)["access_token"])
        except OAuthError as err:
            return err.error

    try:
        outcomes = _race(4, redeem)
    finally:
        for database in databases:
            database.close()
    assert sorted(o if o == "invalid_grant" else "token" for o in outcomes) == [
        "invalid_grant",
        "invalid_grant",
        "invalid_grant",
        "token",
    ], outcomes


def test_refresh_tokens_rotate_and_end_with_the_login(db: Database, clock: Clock) -> None:
    server = BuiltinServer(db, BASE, clock=clock, user_lifetime=600, session_lifetime=3600)
    assert "refresh_token" in server.metadata()["grant_types_supported"]
    verifier = pkce.new_verifier()
    first = _redeem(server, _code(server, verifier, "writer"), verifier)
    assert first["refresh_expires_in"] == 3600 and first["expires_in"] == 600

    def trade(token: str, client_id: str = "fhirmwl-desk") -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
        return server.token(form)

    with pytest.raises(OAuthError, match="another client_id"):
        trade(first["refresh_token"], "someone-else")  # refused, and the token is not spent
    second = trade(first["refresh_token"])
    with pytest.raises(OAuthError, match="unknown, was used before"):
        trade(first["refresh_token"])
    clock.now += 3000
    third = trade(second["refresh_token"])
    assert third["refresh_token"] != second["refresh_token"]
    assert third["expires_in"] == 600 and third["refresh_expires_in"] == 600  # same end
    claims = jwt.decode(third["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "writer" and claims["scope"] == "user/*.cruds user/Task.rs"
    with pytest.raises(OAuthError, match="unknown, was used before"):
        trade(second["refresh_token"])  # single use
    users.change_user(db, "writer", scope="user/Task.rs")  # voids the user's refresh tokens
    with pytest.raises(OAuthError, match="unknown, was used before"):
        trade(third["refresh_token"])
    fourth = _redeem(server, _code(server, verifier, "writer"), verifier)
    clock.now += 3600
    with pytest.raises(OAuthError, match="expired"):
        trade(fourth["refresh_token"])


def test_no_refresh_tokens_without_a_session_lifetime(server: BuiltinServer) -> None:
    verifier = pkce.new_verifier()
    answer = _redeem(server, _code(server, verifier), verifier)
    assert "refresh_token" not in answer
    assert "refresh_token" not in server.metadata()["grant_types_supported"]
    with pytest.raises(OAuthError) as refused:
        server.token({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "d"})
    assert refused.value.error == "unsupported_grant_type"
