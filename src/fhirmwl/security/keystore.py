"""What the built-in authorization server keeps in the store: its signing key, the registered
clients and the client-assertion ids already used.

In the database rather than in files so that several broker processes on one PostgreSQL share
one key (a token minted by one is accepted by the others) and a client registered with
``fhirmwl client add`` is known to every process at once. The server key (ES256, P-256) is made
on first use; ``INSERT … ON CONFLICT DO NOTHING`` and a re-read make two processes starting
together agree on one key. The private key is stored as PEM: whoever can read the database can
already read every order, and the key only signs short-lived access tokens.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhirmwl.errors import BadRequest, Conflict, NotFound
from fhirmwl.security.scopes import parse_scopes
from fhirmwl.security.tokens import parse_jwks
from fhirmwl.store.db import Database
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

AUTH_MIGRATION = Migration(
    140,
    "built-in authorization server: signing key, clients, used assertion ids",
    (
        """CREATE TABLE auth_server_key (slot TEXT PRIMARY KEY, kid TEXT NOT NULL,
            alg TEXT NOT NULL, private_pem TEXT NOT NULL, created TEXT NOT NULL)""",
        """CREATE TABLE auth_client (client_id TEXT PRIMARY KEY, jwks TEXT NOT NULL,
            scope TEXT NOT NULL, created TEXT NOT NULL)""",
        """CREATE TABLE auth_jti (client_id TEXT NOT NULL, jti TEXT NOT NULL,
            exp BIGINT NOT NULL, PRIMARY KEY (client_id, jti))""",
        "CREATE INDEX ix_auth_jti_exp ON auth_jti (exp)",
    ),
)
SERVER_ALG = "ES256"


def register_migration() -> None:
    if not any(m.version == AUTH_MIGRATION.version for m in MIGRATIONS):
        register(AUTH_MIGRATION)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ServerKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.public_key()))
        return {**jwk, "kid": self.kid, "alg": SERVER_ALG, "use": "sig"}

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class Client:
    client_id: str
    jwks: str
    scope: str
    created: str


def server_key(db: Database) -> ServerKey:
    """The current signing key; generated and stored on first use."""
    with db.transaction(write=False) as conn:
        row = conn.execute(
            "SELECT kid, private_pem FROM auth_server_key WHERE slot = 'current'"
        ).fetchone()
    if row is None:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        with db.transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO auth_server_key (slot, kid, alg, private_pem, created) "
                "VALUES ('current', ?, ?, ?, ?) ON CONFLICT (slot) DO NOTHING",
                (uuid.uuid4().hex, SERVER_ALG, pem, _now()),
            )
            row = conn.execute(
                "SELECT kid, private_pem FROM auth_server_key WHERE slot = 'current'"
            ).fetchone()
    private = serialization.load_pem_private_key(row[1].encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return ServerKey(row[0], private)


def add_client(db: Database, client_id: str, jwks_text: str, scope: str) -> Client:
    if not client_id or len(client_id) > 128 or not client_id.isprintable() or " " in client_id:
        raise BadRequest("a client id is 1-128 printable characters without spaces")
    try:
        parse_jwks(jwks_text)
    except ValueError as exc:
        raise BadRequest(f"the client's JWKS is not usable: {exc}") from None
    if not parse_scopes(scope):
        raise BadRequest(f"no SMART scope in {scope!r} (e.g. system/Task.rs)")
    client = Client(client_id, jwks_text, " ".join(scope.split()), _now())
    with db.transaction(write=True) as conn:
        inserted = conn.execute(
            "INSERT INTO auth_client (client_id, jwks, scope, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (client_id) DO NOTHING",
            (client.client_id, client.jwks, client.scope, client.created),
        )
        if inserted.rowcount != 1:
            raise Conflict(f"client {client_id!r} is already registered")
    return client


def get_client(db: Database, client_id: str) -> Client | None:
    with db.transaction(write=False) as conn:
        row = conn.execute(
            "SELECT client_id, jwks, scope, created FROM auth_client WHERE client_id = ?",
            (client_id,),
        ).fetchone()
    return Client(*row) if row else None


def list_clients(db: Database) -> list[Client]:
    with db.transaction(write=False) as conn:
        rows = conn.execute(
            "SELECT client_id, jwks, scope, created FROM auth_client ORDER BY client_id"
        ).fetchall()
    return [Client(*r) for r in rows]


def remove_client(db: Database, client_id: str) -> None:
    with db.transaction(write=True) as conn:
        gone = conn.execute("DELETE FROM auth_client WHERE client_id = ?", (client_id,))
        if gone.rowcount != 1:
            raise NotFound(f"client {client_id!r} is not registered")
        conn.execute("DELETE FROM auth_jti WHERE client_id = ?", (client_id,))


def use_jti(db: Database, client_id: str, jti: str, exp: int, now: int) -> bool:
    """Record an assertion id; False when this client has used it before (a replay)."""
    with db.transaction(write=True) as conn:
        conn.execute("DELETE FROM auth_jti WHERE exp < ?", (now - 3600,))
        inserted = conn.execute(
            "INSERT INTO auth_jti (client_id, jti, exp) VALUES (?, ?, ?) "
            "ON CONFLICT (client_id, jti) DO NOTHING",
            (client_id, jti, exp),
        )
        return bool(inserted.rowcount == 1)
