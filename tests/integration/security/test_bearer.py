"""Bearer tokens of an external issuer on a running broker: httpx against a real ``Runtime``.

The test is the issuer: it makes its own keys, publishes them in a JWKS file given to
``--auth-jwks`` and signs access tokens with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import CATALOGUE, order_bundle, subscription
from tests.integration.security.keys import ISSUER, Signer, access_claims, new_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def idp(tmp_path: Path) -> Signer:
    signer = Signer(tmp_path / "jwks.json")
    signer.add_key("k1", "RS256")
    signer.add_key("k2", "ES256")
    return signer


@pytest.fixture
def broker(tmp_path: Path, idp: Signer) -> Iterator[Runtime]:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(CATALOGUE)
    with running_broker(
        f"sqlite:///{tmp_path / 'auth.db'}",
        auth_jwks=str(idp.path),
        auth_issuer=ISSUER,
        catalogue=str(catalogue),
    ) as runtime:
        yield runtime


class Api:
    def __init__(self, runtime: Runtime, idp: Signer) -> None:
        self.base = runtime.settings.fhir_base
        self.idp = idp
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def token(self, scope: str, kid: str = "k1", **claims: Any) -> str:
        return self.idp.sign(access_claims(self.base, scope, **claims), kid)

    def call(self, method: str, url: str, scope: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**FHIR_JSON, **kw.pop("headers", {})}
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.token(scope)}"
        return self.http.request(method, url, headers=headers, **kw)


@pytest.fixture
def api(broker: Runtime, idp: Signer) -> Iterator[Api]:
    client = Api(broker, idp)
    yield client
    client.http.close()


def _diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_no_token_is_401_with_bearer_challenge(api: Api) -> None:
    for method, url in [("GET", "/Task"), ("DELETE", "/Task?status=requested"), ("POST", "")]:
        response = api.call(method, url, json={"resourceType": "Bundle", "type": "batch"})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["issue"][0]["code"] == "login"
    dicomweb = api.http.get(
        api.base.replace("/fhir", "/dicomweb/modality-scheduled-procedure-steps")
    )
    assert dicomweb.status_code == 401


def test_metadata_and_smart_configuration_stay_public(api: Api) -> None:
    cs = api.http.get("/metadata")
    assert cs.status_code == 200
    security = cs.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = security["extension"][0]
    assert uris["url"].endswith("/oauth-uris")
    token_url = uris["extension"][0]["valueUri"]
    smart = api.http.get("/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == token_url
    assert "client_credentials" in smart["grant_types_supported"]
    assert "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(alg: str, claims: dict[str, Any], secret: bytes | None = None) -> str:
    """A JWT built by hand: ``alg: none``, or HS256 keyed with public key bytes (alg confusion)."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "k1"}).encode())
    signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _bad_tokens(api: Api) -> dict[str, str]:
    now = int(time.time())
    claims = access_claims(api.base, "system/*.cruds")
    public_pem = (
        api.idp.keys["k1"][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "expired": api.idp.sign({**claims, "exp": now - 600, "iat": now - 900}, "k1"),
        "not yet valid": api.idp.sign({**claims, "nbf": now + 600}, "k1"),
        "wrong issuer": api.idp.sign({**claims, "iss": "https://evil.example"}, "k1"),
        "wrong audience": api.idp.sign({**claims, "aud": "https://other.example/fhir"}, "k1"),
        "unknown kid": jwt.encode(claims, api.idp.keys["k1"][0], "RS256", {"kid": "k9"}),
        "alg none": _unsigned("none", claims),
        "HS256 with the public key": _unsigned("HS256", claims, public_pem),
        "RS384 not accepted": api.idp.sign(claims, "k1", "RS384"),
        "no exp": api.idp.sign({k: v for k, v in claims.items() if k != "exp"}, "k1"),
        "garbage": "not-a-jwt",
        "signed by another key": jwt.encode(claims, new_key("RS256"), "RS256", {"kid": "k1"}),
    }


def test_bad_tokens_are_401_invalid_token(api: Api) -> None:
    for reason, token in _bad_tokens(api).items():
        response = api.http.get("/Task", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, reason
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], reason
        assert _diagnostics(response), reason


def test_rs256_and_es256_tokens_are_accepted(api: Api) -> None:
    for kid in ("k1", "k2"):
        token = api.token("system/Task.rs", kid)
        response = api.http.get("/Task", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, kid


def test_key_rotation_through_the_jwks(api: Api) -> None:
    old = api.token("system/Task.rs", "k1")
    assert api.http.get("/Task", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    api.idp.add_key("k3", "RS256", publish=False)
    api.idp.publish("k3")  # the issuer rotates: k3 replaces k1 and k2
    new = api.token("system/Task.rs", "k3")
    assert api.http.get("/Task", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    refused = api.http.get("/Task", headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 401
    assert "k1" in _diagnostics(refused)


# (scope, method, url, body kind, expected status, missing scope named in the 403)
HTTP_RULES = [
    ("system/Task.rs", "GET", "/Task", None, 200, None),
    ("system/Task.rs", "POST", "/Task", "task", 403, "system/Task.c"),
    ("system/Task.rs", "DELETE", "/Task?status=requested", None, 403, "system/Task.d"),
    ("system/Task.rs", "GET", "/Patient", None, 403, "system/Patient.s"),
    ("system/Task.rs", "GET", "/Task?_include=Task:patient", None, 403, "system/Patient.r"),
    ("system/Task.rs", "POST", "/$create-order", "order", 403, "system/ServiceRequest.c"),
    ("system/*.cruds", "POST", "/Patient", "patient", 201, None),
    ("system/*.cruds", "DELETE", "/Task?status=requested", None, 200, None),
    ("system/*.cruds", "POST", "/$create-order", "order", 201, None),
    ("system/*.cruds", "POST", "/Subscription", "subscription", 403, "system/Subscription.c"),
    ("system/Subscription.c", "POST", "/Subscription", "subscription", 201, None),
    ("system/Task.cruds", "POST", "", "transaction", 403, "system/Patient.c"),
    ("system/*.cruds", "POST", "", "transaction", 200, None),
    ("user/Task.read", "GET", "/Task", None, 200, None),
    ("system/Task.s", "GET", "/Task/$mwl-query", None, 200, None),
]


def _body(kind: str | None) -> Any:
    patient = {"resourceType": "Patient", "name": [{"family": "Rossi"}]}
    return {
        None: None,
        "task": {"resourceType": "Task", "status": "requested", "intent": "order"},
        "patient": patient,
        "order": order_bundle(),
        "subscription": subscription("order-created", "http://127.0.0.1:9/hook"),
        "transaction": {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
        },
    }[kind]


@pytest.mark.parametrize(("scope", "method", "url", "kind", "status", "missing"), HTTP_RULES)
def test_scopes_over_http(api: Api, scope, method, url, kind, status, missing) -> None:
    response = api.call(method, url, scope, json=_body(kind))
    assert response.status_code == status, response.text
    if missing:
        assert missing in _diagnostics(response)
        assert f'scope="{missing}"' in response.headers["WWW-Authenticate"]


def test_refused_transaction_writes_nothing(api: Api) -> None:
    api.call("POST", "", "system/Task.cruds", json=_body("transaction"))
    found = api.call("GET", "/Patient", "system/Patient.s").json()
    assert found["total"] == 0


def test_dicomweb_needs_task_search(api: Api) -> None:
    url = api.base.replace("/fhir", "/dicomweb/modality-scheduled-procedure-steps")
    ok = api.http.get(url, headers={"Authorization": f"Bearer {api.token('system/Task.s')}"})
    assert ok.status_code in (200, 204)
    no = api.http.get(url, headers={"Authorization": f"Bearer {api.token('system/Patient.rs')}"})
    assert no.status_code == 403


def test_patient_scope_sees_only_its_compartment(api: Api) -> None:
    writer = "system/*.cruds"
    ids = []
    for family in ("Rossi", "Bianchi"):
        patient = api.call(
            "POST", "/Patient", writer, json={**_body("patient"), "name": [{"family": family}]}
        )
        pid = patient.json()["id"]
        ids.append(pid)
        task = {**_body("task"), "for": {"reference": f"Patient/{pid}"}}
        assert api.call("POST", "/Task", writer, json=task).status_code == 201
    headers = {"Authorization": f"Bearer {api.token('patient/*.rs', patient=ids[0])}"}
    tasks = api.http.get("/Task", headers=headers).json()
    assert [e["resource"]["for"]["reference"] for e in tasks["entry"]] == [f"Patient/{ids[0]}"]
    other = api.http.get(f"/Task?patient=Patient/{ids[1]}", headers=headers).json()
    assert other["total"] == 0  # the compartment is ANDed with what the client asked
    assert api.http.get(f"/Patient/{ids[0]}", headers=headers).status_code == 200
    assert api.http.get(f"/Patient/{ids[1]}", headers=headers).status_code == 403
    own, foreign = (e["resource"]["id"] for e in api.call("GET", "/Task", writer).json()["entry"])
    if tasks["entry"][0]["resource"]["id"] != own:
        own, foreign = foreign, own
    read = api.http.get(f"/Task/{own}", headers=headers)
    assert read.status_code == 200 and read.json()["for"]["reference"] == f"Patient/{ids[0]}"
    refused = api.http.get(f"/Task/{foreign}", headers=headers)
    assert refused.status_code == 403 and "compartment" in _diagnostics(refused)
    assert api.http.get("/Task/no-such-task", headers=headers).status_code == 404
    patients = api.http.get("/Patient", headers=headers).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == [ids[0]]
