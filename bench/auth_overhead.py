"""Benchmark what bearer tokens cost per request: ``GET /fhir/Patient/{id}`` on a server without
authentication, then with an RS256 token of an external issuer (signature, claims and scope
checks on every request). Prints figures; asserts nothing.

    python bench/auth_overhead.py --n 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from _common import Server, summary_ms
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.bench.test"


def _timed(port: int, path: str, n: int, token: str | None) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    times = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200, response.status
    conn.close()
    return times


def _post(port: int, path: str, body: Any, token: str | None, ctype: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": ctype, **({"Authorization": f"Bearer {token}"} if token else {})}
    payload = body if isinstance(body, str) else json.dumps(body)
    conn.request("POST", path, body=payload, headers=headers)
    data: dict[str, Any] = json.loads(conn.getresponse().read())
    conn.close()
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]}))
    patient = {"resourceType": "Patient", "name": [{"family": "Bench"}]}
    for label, extra in [
        ("no authentication", ()),
        ("RS256 external token", ("--auth-jwks", str(tmp / "jwks.json"), "--auth-issuer", ISSUER)),
    ]:
        server = Server(f"sqlite:///{tmp / (label[:2] + '.db')}", "--no-mllp", "--no-dicom", *extra)
        try:
            base = f"http://127.0.0.1:{server.port}/fhir"
            now = int(time.time())
            claims = {"iss": ISSUER, "aud": base, "exp": now + 3600, "scope": "system/*.cruds"}
            token = jwt.encode(claims, key, "RS256", {"kid": "k1"}) if extra else None
            ctype = "application/fhir+json"
            pid = _post(server.port, "/fhir/Patient", patient, token, ctype)["id"]
            _timed(server.port, f"/fhir/Patient/{pid}", 200, token)  # warm-up
            times = _timed(server.port, f"/fhir/Patient/{pid}", args.n, token)
            print(f"GET Patient/id, {label}: {summary_ms(times)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
