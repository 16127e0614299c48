"""The built-in authorization server end to end: ``fhirmwl client add`` through the CLI, a client
that signs its own assertion (PyJWT, keys made here), ``/auth/token`` on a running ``Runtime``,
and the access token used on the FHIR API. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from fhirmwl.cli import app
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import CATALOGUE, order_bundle
from tests.integration.security.keys import ISSUER, Signer, access_claims, assertion_claims

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


@pytest.fixture
def ris(tmp_path: Path) -> Signer:
    """A backend client "ris" with an RS384 key and an ES384 key in its JWKS."""
    signer = Signer(tmp_path / "ris-jwks.json")
    signer.add_key("r1", "RS384")
    signer.add_key("e1", "ES384")
    return signer


def _register(db: str, ris: Signer, scope: str = "system/Task.rs system/Patient.cruds") -> None:
    result = cli("client", "add", "ris", "--jwks", str(ris.path), "--scope", scope, "--db", db)
    assert result.exit_code == 0, result.output


def _token_request(http: httpx.Client, url: str, assertion: str, **form: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **form,
    }
    return http.post(url, data=data)


@pytest.fixture
def builtin(db_url: str, ris: Signer) -> Iterator[tuple[Runtime, httpx.Client, str]]:
    _register(db_url, ris)
    with (
        running_broker(db_url, auth="builtin", auth_token_lifetime=120) as runtime,
        httpx.Client(base_url=runtime.settings.fhir_base, timeout=30) as http,
    ):
        token_url = http.get("/.well-known/smart-configuration").json()["token_endpoint"]
        yield runtime, http, token_url


def test_client_add_list_remove(db_url: str, ris: Signer) -> None:
    _register(db_url, ris)
    listed = cli("client", "list", "--db", db_url)
    assert listed.exit_code == 0
    assert listed.output.startswith("ris\tsystem/Task.rs system/Patient.cruds\t")
    duplicate = cli(
        "client", "add", "ris", "--jwks", str(ris.path), "--scope", "system/Task.rs", "--db", db_url
    )
    assert duplicate.exit_code == 1 and "already registered" in duplicate.output
    assert cli("client", "remove", "ris", "--db", db_url).exit_code == 0
    assert cli("client", "list", "--db", db_url).output.strip() == "no clients registered"
    assert cli("client", "remove", "ris", "--db", db_url).exit_code == 1


def test_client_add_refuses_bad_input(tmp_path: Path, ris: Signer) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    bad_jwks = tmp_path / "bad.json"
    bad_jwks.write_text('{"keys": []}')
    for args, message in [
        (["--jwks", str(bad_jwks), "--scope", "system/Task.rs"], "JWKS"),
        (["--jwks", str(ris.path), "--scope", "openid"], "no SMART scope"),
        (["--jwks", str(tmp_path / "missing.json"), "--scope", "system/Task.rs"], "cannot read"),
    ]:
        result = cli("client", "add", "ris", *args, "--db", db)
        assert result.exit_code == 1 and message in result.output, result.output


def test_backend_services_end_to_end(builtin: tuple[Runtime, httpx.Client, str], ris: Signer):
    runtime, http, token_url = builtin
    assert token_url == runtime.settings.fhir_base.removesuffix("/fhir") + "/auth/token"
    for kid in ("r1", "e1"):  # RS384 and ES384 assertions
        signed = ris.sign(assertion_claims("ris", token_url), kid)
        answer = _token_request(http, token_url, signed, scope="system/Task.rs")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 120
        assert body["scope"] == "system/Task.rs"
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        assert http.get("/Task", headers=auth).status_code == 200
        refused = http.post("/Task", headers=auth, json={"resourceType": "Task"})
        assert refused.status_code == 403
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120 and claims["sub"] == "ris"
    keys = http.get(runtime.settings.fhir_base.removesuffix("/fhir") + "/auth/jwks").json()
    header = jwt.get_unverified_header(body["access_token"])
    assert [k["kid"] for k in keys["keys"]] == [header["kid"]] and header["alg"] == "ES256"


def test_assertion_replay_is_refused(builtin: tuple[Runtime, httpx.Client, str], ris: Signer):
    _, http, token_url = builtin
    signed = ris.sign(assertion_claims("ris", token_url), "r1")
    assert _token_request(http, token_url, signed).status_code == 200
    replay = _token_request(http, token_url, signed)
    assert replay.status_code == 401
    assert (
        replay.json()["error"] == "invalid_client" and "jti" in replay.json()["error_description"]
    )


def test_scope_negotiation(builtin: tuple[Runtime, httpx.Client, str], ris: Signer) -> None:
    _, http, token_url = builtin

    def ask(scope: str) -> httpx.Response:
        signed = ris.sign(assertion_claims("ris", token_url), "r1")
        return _token_request(http, token_url, signed, scope=scope)

    assert ask("").json()["scope"] == "system/Task.rs system/Patient.cruds"  # all registered
    assert ask("system/Patient.r system/Task.cruds").json()["scope"] == "system/Patient.r"
    wider = ask("system/*.cruds")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def _bad_assertions(ris: Signer, token_url: str) -> list[tuple[str, str, int, str]]:
    now = int(time.time())
    good = assertion_claims("ris", token_url)
    other = Signer(ris.path.with_name("other.json"))
    other.add_key("r1", "RS384")
    return [
        ("wrong aud", ris.sign({**good, "aud": "https://x/token"}, "r1"), 401, "invalid_client"),
        ("expired", ris.sign({**good, "exp": now - 600}, "r1"), 401, "invalid_client"),
        ("exp too far", ris.sign({**good, "exp": now + 3600}, "r1"), 401, "invalid_client"),
        ("no jti", ris.sign({k: v for k, v in good.items() if k != "jti"}, "r1"), 401, "invalid"),
        ("sub != iss", ris.sign({**good, "sub": "lis"}, "r1"), 401, "invalid_client"),
        ("RS256", ris.sign(good, "r1", "RS256"), 401, "invalid_client"),
        ("unknown client", ris.sign({**good, "iss": "x", "sub": "x"}, "r1"), 401, "invalid"),
        ("unregistered key", other.sign(good, "r1"), 401, "invalid_client"),
        ("garbage", "abc", 401, "invalid_client"),
    ]


def test_bad_assertions_are_refused(builtin: tuple[Runtime, httpx.Client, str], ris: Signer):
    _, http, token_url = builtin
    for reason, signed, status, error in _bad_assertions(ris, token_url):
        answer = _token_request(http, token_url, signed)
        assert answer.status_code == status, reason
        assert answer.json()["error"].startswith(error), reason
    signed = ris.sign(assertion_claims("ris", token_url), "r1")
    grant = _token_request(http, token_url, signed, grant_type="password")
    assert grant.json()["error"] == "unsupported_grant_type"
    missing = http.post(token_url, data={"grant_type": "client_credentials"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_builtin_and_external_tokens_side_by_side(tmp_path: Path, ris: Signer) -> None:
    db = f"sqlite:///{tmp_path / 'both.db'}"
    _register(db, ris)
    idp = Signer(tmp_path / "idp-jwks.json")
    idp.add_key("k1", "RS256")
    with (
        running_broker(db, auth_jwks=str(idp.path), auth_issuer=ISSUER) as runtime,
        httpx.Client(base_url=runtime.settings.fhir_base, timeout=30) as http,
    ):
        token_url = http.get("/.well-known/smart-configuration").json()["token_endpoint"]
        signed = ris.sign(assertion_claims("ris", token_url), "e1")
        builtin_token = _token_request(http, token_url, signed).json()["access_token"]
        external = idp.sign(access_claims(runtime.settings.fhir_base, "system/Task.rs"), "k1")
        for token in (builtin_token, external):
            assert (
                http.get("/Task", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            )


def test_two_processes_share_the_server_key(db_url: str, ris: Signer) -> None:
    """Two brokers on one database behind one public base URL accept each other's tokens."""
    _register(db_url, ris)
    public = "http://broker.example.test/fhir"
    settings = {"auth": "builtin", "base_url": public}
    with running_broker(db_url, **settings) as one, running_broker(db_url, **settings) as two:
        urls = [f"http://127.0.0.1:{r.settings.http_port}" for r in (one, two)]
        token_url = "http://broker.example.test/auth/token"
        signed = ris.sign(assertion_claims("ris", token_url), "r1")
        token = httpx.post(
            f"{urls[0]}/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed,
            },
        ).json()["access_token"]
        answer = httpx.get(f"{urls[1]}/fhir/Task", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        replay = httpx.post(
            f"{urls[1]}/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed,
            },
        )
        assert replay.status_code == 401  # the jti table is shared too


def test_auth_is_off_by_default(tmp_path: Path) -> None:
    with running_broker(f"sqlite:///{tmp_path / 'open.db'}") as runtime:
        base = runtime.settings.fhir_base
        assert httpx.get(f"{base}/Task").status_code == 200
        assert "security" not in httpx.get(f"{base}/metadata").json()["rest"][0]


def test_bad_auth_settings_refuse_to_start(tmp_path: Path) -> None:
    from fhirmwl.errors import BadRequest

    db = f"sqlite:///{tmp_path / 'x.db'}"
    for settings in (
        {"auth": "keycloak"},
        {"auth_jwks": str(tmp_path / "missing.json"), "auth_issuer": ISSUER},
        {"auth_issuer": ISSUER},
    ):
        with pytest.raises(BadRequest), running_broker(db, **settings):
            pass


def test_order_commands_send_the_token(tmp_path: Path, ris: Signer) -> None:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    _register(db, ris, "system/*.cruds")
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(CATALOGUE)
    order = tmp_path / "order.json"
    order.write_text(json.dumps(order_bundle()))
    with running_broker(db, auth="builtin", catalogue=str(catalogue)) as runtime:
        base = runtime.settings.fhir_base
        refused = cli("order", "create", str(order), "--base", base)
        assert refused.exit_code == 1 and "bearer token" in refused.output
        token_url = base.removesuffix("/fhir") + "/auth/token"
        signed = ris.sign(assertion_claims("ris", token_url), "e1")
        with httpx.Client(timeout=30) as http:
            token = _token_request(http, token_url, signed).json()["access_token"]
        created = cli("order", "create", str(order), "--base", base, "--token", token)
        assert created.exit_code == 0, created.output
        order_id = json.loads(created.output)["entry"][0]["resource"]["id"]
        cancelled = runner.invoke(
            app, ["order", "cancel", order_id, "--base", base], env={"FHIRMWL_TOKEN": token}
        )
        assert cancelled.exit_code == 0, cancelled.output


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    first = cli("client", "keygen", "pacs", "--out", str(tmp_path), "--alg", "RS384")
    assert first.exit_code == 0, first.output
    jwks = json.loads((tmp_path / "pacs-jwks.json").read_text())
    assert [k["alg"] for k in jwks["keys"]] == ["RS384"] and "d" not in jwks["keys"][0]
    key_before = (tmp_path / "pacs-key.pem").read_bytes()
    again = cli("client", "keygen", "pacs", "--out", str(tmp_path))
    assert again.exit_code == 1 and "exists" in again.output
    assert (tmp_path / "pacs-key.pem").read_bytes() == key_before
    bad = cli("client", "keygen", "lis", "--out", str(tmp_path), "--alg", "HS256")
    assert bad.exit_code == 1 and "RS384 or ES384" in bad.output
