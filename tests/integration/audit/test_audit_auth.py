"""Authenticated agents and refused tokens in the audit trail (bearer tokens on, test's own IdP).

Reading the trail needs its own scope (``AuditEvent.rs``); a token without it is refused, and
that refusal is itself an event.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import running_broker
from tests.integration.security.keys import ISSUER, Signer, access_claims


def test_agent_from_token_and_refusals_are_audited(tmp_path: Path) -> None:
    idp = Signer(tmp_path / "jwks.json")
    idp.add_key("k1", "RS256")
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with running_broker(db, auth_jwks=str(idp.path), auth_issuer=ISSUER) as rt:
        base = rt.settings.fhir_base

        def bearer(scope: str, **claims: Any) -> dict[str, str]:
            token = idp.sign(access_claims(base, scope, **claims), "k1")
            return {"Authorization": f"Bearer {token}"}

        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/Patient").status_code == 401  # no token
            assert http.get("/Patient", headers={"Authorization": "Bearer junk"}).status_code == 401
            written = http.post(
                "/Patient",
                json={"resourceType": "Patient", "gender": "female"},
                headers=bearer("system/Patient.c", client_id="ris-app"),
            )
            assert written.status_code == 201
            pid = written.json()["id"]
            refused = http.get("/AuditEvent", headers=bearer("system/Patient.rs"))
            assert refused.status_code == 403 and "AuditEvent" in refused.text
            reader = bearer("system/AuditEvent.rs")
            deadline = time.monotonic() + 10
            while True:
                events = [
                    e["resource"]
                    for e in http.get("/AuditEvent?_count=100", headers=reader).json()["entry"]
                ]
                codes = [e["category"][0]["coding"][0]["code"] for e in events]
                if codes.count("110114") >= 2 and "110130" in codes:
                    break
                assert time.monotonic() < deadline, codes
                time.sleep(0.1)
    change = next(
        e
        for e in events
        if e["action"] == "C" and e.get("patient") == {"reference": f"Patient/{pid}"}
    )
    who = change["agent"][0]["who"]
    assert who["identifier"]["value"] == "ris-app" and "sub=ris-1" in who["display"]
    auth_failures = [e for e in events if e["category"][0]["coding"][0]["code"] == "110114"]
    assert all(e["outcome"]["code"]["code"] == "4" for e in auth_failures)
    assert all(e["agent"][0]["who"]["identifier"]["value"] == "anonymous" for e in auth_failures)
