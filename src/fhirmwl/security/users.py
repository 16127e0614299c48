"""Desk users of the built-in authorization server: name, salted password hash, allowed scopes;
and the authorization codes it hands out for them.

Users live in the database (like the backend clients in ``keystore``) so every broker process
on one PostgreSQL knows a user added with ``fhirmwl user add`` at once, and so do the codes: a
code issued by one process can be redeemed at another behind the same load balancer.

Passwords are hashed with scrypt from the standard library (``hashlib.scrypt``, RFC 7914): a
memory-hard function made for this, with a 16-byte random salt per user; the stored text names
its parameters (``scrypt$n$r$p$salt$hash``) so they can be raised later without breaking old
hashes. A login for an unknown name still computes one hash, so the answer time does not tell
which names exist. Codes are stored as their SHA-256 (the code itself is a bearer secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fhirmwl.errors import BadRequest, Conflict, NotFound
from fhirmwl.security.refresh import revoke_user
from fhirmwl.security.scopes import parse_scopes
from fhirmwl.store.db import Database
from fhirmwl.store.migrations import MIGRATIONS, Migration, register

USERS_MIGRATION = Migration(
    210,
    "built-in authorization server: desk users and authorization codes",
    (
        """CREATE TABLE auth_user (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
            scope TEXT NOT NULL, created TEXT NOT NULL)""",
        """CREATE TABLE auth_code (code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL,
            redirect_uri TEXT NOT NULL, challenge TEXT NOT NULL, username TEXT NOT NULL,
            scope TEXT NOT NULL, exp BIGINT NOT NULL)""",
        "CREATE INDEX ix_auth_code_exp ON auth_code (exp)",
    ),
)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # about 16 MiB and a few tens of ms per hash
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def register_migration() -> None:
    from fhirmwl.security import refresh

    if not any(m.version == USERS_MIGRATION.version for m in MIGRATIONS):
        register(USERS_MIGRATION)
    refresh.register_migration()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * 1024 * 1024, dklen=32
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


_DUMMY = hash_password(secrets.token_urlsafe(16))  # compared against for unknown names


@dataclass(frozen=True)
class User:
    name: str
    scope: str
    created: str


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not name.isprintable() or any(c.isspace() for c in name):
        raise BadRequest("a user name is 1-64 printable characters without spaces")


def add_user(db: Database, name: str, password: str, scope: str) -> User:
    _check_name(name)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not parse_scopes(scope):
        raise BadRequest(f"no SMART scope in {scope!r} (e.g. user/Task.rs)")
    user = User(name, " ".join(scope.split()), datetime.now(UTC).isoformat(timespec="seconds"))
    with db.transaction(write=True) as conn:
        inserted = conn.execute(
            "INSERT INTO auth_user (name, password_hash, scope, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (user.name, hash_password(password), user.scope, user.created),
        )
        if inserted.rowcount != 1:
            raise Conflict(f"user {name!r} exists (fhirmwl user set changes it)")
    return user


def change_user(
    db: Database, name: str, *, password: str | None = None, scope: str | None = None
) -> User:
    """Give user ``name`` a new password and/or scopes. An unused login code and the refresh
    tokens of theirs are void (issued under the old ones): an open desk session ends when its
    access token expires."""
    if password is not None and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if scope is not None and not parse_scopes(scope):
        raise BadRequest(f"no SMART scope in {scope!r} (e.g. user/Task.rs)")
    with db.transaction(write=True) as conn:
        if password is not None:
            conn.execute(
                "UPDATE auth_user SET password_hash = ? WHERE name = ?",
                (hash_password(password), name),
            )
        if scope is not None:
            conn.execute(
                "UPDATE auth_user SET scope = ? WHERE name = ?", (" ".join(scope.split()), name)
            )
        row = conn.execute(
            "SELECT name, scope, created FROM auth_user WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        conn.execute("DELETE FROM auth_code WHERE username = ?", (name,))
        revoke_user(conn, name)
    return User(*row)


def list_users(db: Database) -> list[User]:
    with db.transaction(write=False) as conn:
        rows = conn.execute("SELECT name, scope, created FROM auth_user ORDER BY name").fetchall()
    return [User(*r) for r in rows]


def get_user(db: Database, name: str) -> User | None:
    with db.transaction(write=False) as conn:
        row = conn.execute(
            "SELECT name, scope, created FROM auth_user WHERE name = ?", (name,)
        ).fetchone()
    return User(*row) if row else None


def remove_user(db: Database, name: str) -> None:
    with db.transaction(write=True) as conn:
        gone = conn.execute("DELETE FROM auth_user WHERE name = ?", (name,))
        if gone.rowcount != 1:
            raise NotFound(f"user {name!r} does not exist")
        conn.execute("DELETE FROM auth_code WHERE username = ?", (name,))
        revoke_user(conn, name)


def authenticate(db: Database, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs; None otherwise (same work for unknown names)."""
    with db.transaction(write=False) as conn:
        row = conn.execute(
            "SELECT name, scope, created, password_hash FROM auth_user WHERE name = ?", (name,)
        ).fetchone()
    if row is None or len(password) > MAX_PASSWORD:
        check_password(password[:MAX_PASSWORD], _DUMMY)
        return None
    return User(row[0], row[1], row[2]) if check_password(password, row[3]) else None


# ---- authorization codes ------------------------------------------------------------------
@dataclass(frozen=True)
class CodeGrant:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    scope: str
    exp: int


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def issue_code(db: Database, grant: CodeGrant, now: int) -> str:
    code = secrets.token_urlsafe(32)
    with db.transaction(write=True) as conn:
        conn.execute("DELETE FROM auth_code WHERE exp < ?", (now - 60,))
        conn.execute(
            "INSERT INTO auth_code (code_hash, client_id, redirect_uri, challenge, username, "
            "scope, exp) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _code_hash(code),
                grant.client_id,
                grant.redirect_uri,
                grant.challenge,
                grant.username,
                grant.scope,
                grant.exp,
            ),
        )
    return code


def redeem_code(db: Database, code: str) -> CodeGrant | None:
    """Take a code out of the store (single use: a second redemption finds nothing)."""
    key = _code_hash(code)
    with db.transaction(write=True) as conn:
        row = conn.execute(
            "SELECT client_id, redirect_uri, challenge, username, scope, exp FROM auth_code "
            "WHERE code_hash = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        taken = conn.execute("DELETE FROM auth_code WHERE code_hash = ?", (key,))
        if taken.rowcount != 1:  # another process redeemed it at the same moment
            return None
    return CodeGrant(*row)
