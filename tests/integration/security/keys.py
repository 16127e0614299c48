"""Test-side key material: an "external issuer" that mints its own JWTs and publishes a JWKS file,
and a backend client that signs SMART Backend Services assertions. Real keys, real signatures."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.test/realms/imaging"


def new_key(alg: str) -> Any:
    if alg.startswith("RS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curve = ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()
    return ec.generate_private_key(curve)


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    jwk: dict[str, Any] = json.loads(algo.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class Signer:
    """Keys by kid (with their alg) and a JWKS file that lists the published ones."""

    def __init__(self, jwks_path: Path) -> None:
        self.path = jwks_path
        self.keys: dict[str, tuple[Any, str]] = {}

    def add_key(self, kid: str, alg: str = "RS256", publish: bool = True) -> None:
        self.keys[kid] = (new_key(alg), alg)
        if publish:
            self.publish(*[k for k in self.published() if k != kid], kid)

    def published(self) -> list[str]:
        if not self.path.exists():
            return []
        return [k["kid"] for k in json.loads(self.path.read_text())["keys"]]

    def publish(self, *kids: str) -> None:
        doc = {"keys": [public_jwk(self.keys[k][0], k, self.keys[k][1]) for k in kids]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)

    def sign(self, claims: dict[str, Any], kid: str, alg: str | None = None) -> str:
        key, key_alg = self.keys[kid]
        return jwt.encode(claims, key, algorithm=alg or key_alg, headers={"kid": kid})


def access_claims(audience: str, scope: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": "ris-1",
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "scope": scope,
        **extra,
    }


def assertion_claims(client_id: str, token_url: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
        **extra,
    }
