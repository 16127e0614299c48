"""The client side of SMART Backend Services, for ``fhirmwl client keygen|token``.

A site without an identity server should not need to write code to get its first token: this
makes a key pair with the JWKS to register, and signs the client assertion (RFC 7523) with which
``/auth/token`` hands out an access token. The key id is the RFC 7638 thumbprint of the public
key, so the JWKS written by ``keygen`` and the assertions signed by ``token`` always agree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirmwl.security.authserver import ASSERTION_TYPE


def generate_key(alg: str) -> Any:
    if alg == "RS384":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"alg must be RS384 or ES384, not {alg!r}")


def key_alg(key: Any) -> str:
    return "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"


def public_jwk(key: Any) -> dict[str, Any]:
    """The public JWK with ``kid`` = RFC 7638 thumbprint, ``alg`` and ``use``."""
    algo = jwt.algorithms.RSAAlgorithm if key_alg(key) == "RS384" else jwt.algorithms.ECAlgorithm
    jwk: dict[str, Any] = json.loads(algo.to_jwk(key.public_key()))
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": key_alg(key), "use": "sig"}


def private_pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def load_private_key(pem: bytes) -> Any:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError("the key must be an RSA or EC private key")
    return key


def assertion(client_id: str, key: Any, token_url: str, lifetime: int = 240) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    kid = public_jwk(key)["kid"]
    return jwt.encode(claims, key, algorithm=key_alg(key), headers={"kid": kid})


def fetch_token(
    fhir_base: str, client_id: str, key: Any, scope: str, http: httpx.Client
) -> dict[str, Any]:
    """Discover the token endpoint from smart-configuration and run the client credentials grant.

    Raises ``httpx.HTTPError`` when the server cannot be reached and ``ValueError`` with the
    server's ``error_description`` when it refuses.
    """
    config = http.get(f"{fhir_base.rstrip('/')}/.well-known/smart-configuration")
    config.raise_for_status()
    token_url = config.json()["token_endpoint"]
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(client_id, key, token_url),
    }
    if scope:
        form["scope"] = scope
    response = http.post(token_url, data=form)
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise ValueError(f"{body.get('error')}: {body.get('error_description')}")
    return body
