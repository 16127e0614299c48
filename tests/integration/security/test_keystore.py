"""The built-in server's store under concurrency, on SQLite and PostgreSQL: processes starting
together agree on one signing key, and one client assertion buys one token even when it is
posted many times at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhirmwl.security import keystore
from fhirmwl.security.authserver import BuiltinServer, OAuthError
from fhirmwl.store.db import open_database
from fhirmwl.store.migrations import migrate
from tests.integration.security.keys import Signer, assertion_claims

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each racer got
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_one_server_key_for_racing_processes(db_url: str) -> None:
    keystore.register_migration()
    databases = [open_database(db_url) for _ in range(4)]  # one pool/connection each
    try:
        migrate(databases[0])
        kids = _race(4, lambda i: keystore.server_key(databases[i]).kid)
    finally:
        for db in databases:
            db.close()
    assert all(isinstance(k, str) for k in kids), kids
    assert len(set(kids)) == 1


def test_one_token_per_assertion_under_a_race(db_url: str, tmp_path: Path) -> None:
    keystore.register_migration()
    ris = Signer(tmp_path / "ris.json")
    ris.add_key("r1", "RS384")
    databases = [open_database(db_url) for _ in range(4)]
    try:
        migrate(databases[0])
        keystore.add_client(databases[0], "ris", ris.path.read_text(), "system/Task.rs")
        servers = [BuiltinServer(db, "http://broker.test/fhir") for db in databases]
        signed = ris.sign(assertion_claims("ris", servers[0].token_url), "r1")
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        }
        results = _race(4, lambda i: servers[i].token(form))
    finally:
        for db in databases:
            db.close()
    tokens = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, OAuthError)]
    assert len(tokens) == 1 and len(refused) == 3, results
    assert all(r.error == "invalid_client" for r in refused)
