"""Server-side state of the desk login: pending logins and sessions, keyed by random ids.

The browser holds only a random id in an ``HttpOnly`` cookie; the access token stays on the
server, so a script injected into a page (or a copied cookie jar) never sees a token that also
opens the FHIR API. The rows are in the database rather than in process memory so that every
``serve`` process on one PostgreSQL knows a session (a load balancer may send the callback and
the next page to different processes). Ids are stored as their SHA-256, and each row's data (the
access token of a session, the PKCE verifier of a pending login) is encrypted with AES-256-GCM
under a key derived from the id (HKDF-SHA-256): the browser's cookie is the only key, so a
database dump or backup shows no live token and no id to present. A pending login (state, PKCE
verifier, the page to return to) is taken out once, at the callback; a session row lives until
its token expires or the user logs out. Expired rows are deleted as new ones are written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fhirmwl.store.db import Database
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

SESSION_MIGRATION = Migration(
    211,
    "web desk: pending logins and login sessions",
    (
        """CREATE TABLE desk_session (id_hash TEXT PRIMARY KEY, kind TEXT NOT NULL,
            data TEXT NOT NULL, exp BIGINT NOT NULL)""",
        "CREATE INDEX ix_desk_session_exp ON desk_session (exp)",
    ),
)
# Rows written before the data was encrypted held tokens in clear: dropped (users log in again).
SEALED_MIGRATION = Migration(
    212, "web desk: session data encrypted under the session id", ("DELETE FROM desk_session",)
)
LOGIN, SESSION = "login", "session"


def register_migration() -> None:
    for migration in (SESSION_MIGRATION, SEALED_MIGRATION):
        if not any(m.version == migration.version for m in MIGRATIONS):
            register(migration)


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def _cipher(sid: str) -> AESGCM:
    kdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"fhirmwl desk session data")
    return AESGCM(kdf.derive(sid.encode("utf-8")))


def seal(sid: str, kind: str, data: dict[str, Any]) -> str:
    """``data`` encrypted under ``sid`` (the row kind is bound in as associated data)."""
    nonce = secrets.token_bytes(12)
    box = _cipher(sid).encrypt(nonce, json.dumps(data).encode("utf-8"), kind.encode())
    return base64.b64encode(nonce + box).decode("ascii")


def unseal(sid: str, kind: str, text: str) -> dict[str, Any] | None:
    """The data ``seal`` wrote, or None when it was not written under ``sid`` and ``kind``."""
    try:
        raw = base64.b64decode(text, validate=True)
        plain = _cipher(sid).decrypt(raw[:12], raw[12:], kind.encode())
    except (ValueError, InvalidTag):
        return None
    data: dict[str, Any] = json.loads(plain)
    return data


class SessionStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db, self.clock = db, clock

    def put(self, kind: str, data: dict[str, Any], exp: int) -> str:
        """A new row; returns its id (the cookie value)."""
        sid = secrets.token_urlsafe(32)
        with self.db.transaction(write=True) as conn:
            conn.execute("DELETE FROM desk_session WHERE exp < ?", (int(self.clock()),))
            conn.execute(
                "INSERT INTO desk_session (id_hash, kind, data, exp) VALUES (?, ?, ?, ?)",
                (_key(sid), kind, seal(sid, kind, data), exp),
            )
        return sid

    def replace(self, kind: str, sid: str, data: dict[str, Any]) -> None:
        """New data for a row (a refreshed token); its expiry stays."""
        with self.db.transaction(write=True) as conn:
            conn.execute(
                "UPDATE desk_session SET data = ? WHERE id_hash = ? AND kind = ?",
                (seal(sid, kind, data), _key(sid), kind),
            )

    def get(self, kind: str, sid: str) -> dict[str, Any] | None:
        return self._read(kind, sid, take=False)

    def take(self, kind: str, sid: str) -> dict[str, Any] | None:
        """The row's data, deleting it (single use: a second call finds nothing)."""
        return self._read(kind, sid, take=True)

    def _read(self, kind: str, sid: str, take: bool) -> dict[str, Any] | None:
        if not sid or len(sid) > 128:
            return None
        with self.db.transaction(write=take) as conn:
            row = conn.execute(
                "SELECT data, exp FROM desk_session WHERE id_hash = ? AND kind = ?",
                (_key(sid), kind),
            ).fetchone()
            if row is not None and take:
                gone = conn.execute("DELETE FROM desk_session WHERE id_hash = ?", (_key(sid),))
                row = row if gone.rowcount == 1 else None  # another process took it first
        if row is None or row[1] <= self.clock():
            return None
        return unseal(sid, kind, row[0])

    def drop(self, sid: str) -> None:
        if sid and len(sid) <= 128:
            with self.db.transaction(write=True) as conn:
                conn.execute("DELETE FROM desk_session WHERE id_hash = ?", (_key(sid),))
