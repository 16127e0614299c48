"""Refresh tokens of the built-in authorization server, for desk users (RFC 6749 §6).

A desk login lasts ``auth_user_session_lifetime`` (a shift), while its access tokens stay short
(``auth_user_token_lifetime``): the desk trades the refresh token for a new access token when the
old one expires. Each refresh token is single use (rotation, RFC 9700 §4.14.2): redeeming it
issues a new one with the same absolute expiry, so a session never outlives the lifetime given at
login, and a stolen refresh token that was already used is worth nothing. The store keeps only
the SHA-256 of a token. Scopes are narrowed to the user's scopes at every refresh, and removing
or changing a user deletes their refresh tokens, so such a change ends open desk sessions at
their next refresh instead of at the end of the shift.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fhirmwl.store.db import Conn, Database
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

REFRESH_MIGRATION = Migration(
    213,
    "built-in authorization server: refresh tokens of desk users",
    (
        """CREATE TABLE auth_refresh (token_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL,
            username TEXT NOT NULL, scope TEXT NOT NULL, exp BIGINT NOT NULL)""",
        "CREATE INDEX ix_auth_refresh_user ON auth_refresh (username)",
        "CREATE INDEX ix_auth_refresh_exp ON auth_refresh (exp)",
    ),
)


def register_migration() -> None:
    if not any(m.version == REFRESH_MIGRATION.version for m in MIGRATIONS):
        register(REFRESH_MIGRATION)


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    username: str
    scope: str
    exp: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(db: Database, grant: RefreshGrant, now: int) -> str:
    """A new refresh token for ``grant``; expired ones are deleted on the way."""
    token = secrets.token_urlsafe(32)
    with db.transaction(write=True) as conn:
        conn.execute("DELETE FROM auth_refresh WHERE exp < ?", (now,))
        conn.execute(
            "INSERT INTO auth_refresh (token_hash, client_id, username, scope, exp) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(token), grant.client_id, grant.username, grant.scope, grant.exp),
        )
    return token


def take(db: Database, token: str, client_id: str) -> RefreshGrant | None:
    """Take a refresh token of ``client_id`` out of the store (single use: a second call finds
    nothing). A token presented by another client id is left where it is: whoever holds a
    user's token cannot spend it, and so end their session, by naming the wrong client."""
    if not token or len(token) > 256:
        return None
    key = _hash(token)
    with db.transaction(write=True) as conn:
        row = conn.execute(
            "SELECT client_id, username, scope, exp FROM auth_refresh WHERE token_hash = ?",
            (key,),
        ).fetchone()
        if row is None or row[0] != client_id:
            return None
        taken = conn.execute("DELETE FROM auth_refresh WHERE token_hash = ?", (key,))
        if taken.rowcount != 1:  # another process redeemed it at the same moment
            return None
    return RefreshGrant(*row)


def revoke_user(conn: Conn, username: str) -> None:
    """Delete a user's refresh tokens (in the caller's transaction)."""
    conn.execute("DELETE FROM auth_refresh WHERE username = ?", (username,))
