"""Server-side state of the desk login: pending logins and sessions, keyed by random ids.

The browser holds only a random id in an ``HttpOnly`` cookie; the access token stays on the
server, so a script injected into a page (or a copied cookie jar) never sees a token that also
opens the FHIR API. The rows are in the database rather than in process memory so that every
``serve`` process on one PostgreSQL knows a session (a load balancer may send the callback and
the next page to different processes). Ids are stored as their SHA-256. A pending login (state,
PKCE verifier, the page to return to) is taken out once, at the callback; a session row lives
until its token expires or the user logs out. Expired rows are deleted as new ones are written.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

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
LOGIN, SESSION = "login", "session"


def register_migration() -> None:
    if not any(m.version == SESSION_MIGRATION.version for m in MIGRATIONS):
        register(SESSION_MIGRATION)


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


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
                (_key(sid), kind, json.dumps(data), exp),
            )
        return sid

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
        data: dict[str, Any] = json.loads(row[0])
        return data

    def drop(self, sid: str) -> None:
        if sid and len(sid) <= 128:
            with self.db.transaction(write=True) as conn:
                conn.execute("DELETE FROM desk_session WHERE id_hash = ?", (_key(sid),))
