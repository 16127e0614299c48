"""Validating OAuth 2.0 JWT access tokens (RFC 9068 shape) against trusted issuers.

PyJWT (with ``cryptography``) does the signature and claim checks: it is small, widely used and
audited, refuses ``alg: none`` unless asked, and its ``PyJWK`` turns JWKS entries into keys.
joserfc/authlib would also do; PyJWT has fewer moving parts for the two things we need (verify an
RS256/ES256 token, sign an ES256 one). What PyJWT's ``PyJWKClient`` does not do is read a JWKS
from a *file* or let us bound refetches, so ``JwksSource`` is ours: keys are cached, an unknown
``kid`` triggers one refetch (a file is re-read when it changed, a URL at most once per
``min_refetch`` seconds) so the issuer can rotate keys without a restart, and the whole set is
refreshed after ``max_age`` seconds so withdrawn keys stop working.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from fhirmwl.security.access import Unauthorized

log = logging.getLogger("fhirmwl.security")
ACCESS_TOKEN_ALGS = ("RS256", "ES256")
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat


class InvalidToken(Unauthorized):
    """401 with ``WWW-Authenticate: Bearer error="invalid_token"``."""


class ExpiredToken(InvalidToken):
    issue_code = "expired"


def _keys_from_jwks(data: Any) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for i, entry in enumerate((data or {}).get("keys") or []):
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[str(entry.get("kid") or f"#{i}")] = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # an unusable entry (unknown kty, missing member) never matches a kid
    return keys


def parse_jwks(text: str) -> dict[str, jwt.PyJWK]:
    """A JWKS document → {kid: key}; raises ValueError when it holds no usable key."""
    try:
        keys = _keys_from_jwks(json.loads(text))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"not a JWKS document: {exc}") from None
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


class JwksSource:
    """The signing keys of one issuer, from a file path or an http(s) URL, with a cache."""

    def __init__(self, location: str, *, min_refetch: float = 10.0, max_age: float = 300.0):
        self.location = location
        self.is_url = location.startswith(("http://", "https://"))
        self.min_refetch = min_refetch
        self.max_age = max_age
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = float("-inf")  # last successful load
        self._attempted = float("-inf")  # last attempt
        self._error = ""
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        if self.is_url:
            response = httpx.get(self.location, timeout=10, follow_redirects=False)
            response.raise_for_status()
            text = response.text
        else:
            self._stamp = self._file_stamp()
            with open(self.location, encoding="utf-8") as fh:
                text = fh.read()
        self._keys = parse_jwks(text)

    def _file_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.location)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _may_fetch(self, now: float) -> bool:
        """A URL is fetched at most every ``min_refetch`` s, also while it fails."""
        return not self.is_url or now - self._attempted >= self.min_refetch

    def _stale(self, now: float) -> bool:
        if self.is_url:
            return self._may_fetch(now)
        try:
            return self._file_stamp() != self._stamp
        except OSError:
            return False

    def _refresh(self, now: float) -> None:
        self._attempted = now
        try:
            self._fetch()
        except (OSError, ValueError, httpx.HTTPError) as exc:
            self._error = str(exc)  # keep the keys we have: the issuer may be down briefly
            log.warning("cannot load the JWKS at %s: %s", self.location, exc)
            return
        self._fetched = now

    def key(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            if now - self._fetched > self.max_age and self._may_fetch(now):
                self._refresh(now)
            found = self._lookup(kid)
            if found is None and self._stale(now):  # rotation: the issuer has a new key
                self._refresh(now)
                found = self._lookup(kid)
        if found is not None:
            return found
        if not self._keys:
            raise InvalidToken(f"cannot load the issuer's JWKS: {self._error}")
        raise InvalidToken(f"the token's key id {kid!r} is not in the issuer's JWKS")

    def current(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for ``kid`` if loaded and not older than ``max_age``; never fetches."""
        if time.monotonic() - self._fetched > self.max_age:
            return None
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)


@dataclass
class TrustedIssuer:
    issuer: str
    audience: str
    keys: Callable[[str | None], Any]  # kid → PyJWK (or raises InvalidToken); may do I/O
    algorithms: tuple[str, ...] = ACCESS_TOKEN_ALGS
    current: Callable[[str | None], Any] | None = None  # kid → key already loaded, no I/O


@dataclass
class TokenValidator:
    """Checks tokens of the trusted issuers; remembers tokens it has verified until they expire.

    The memory (at most ``cache_size`` tokens) spares a client that sends the same token on every
    request a signature check and PyJWT's base64 passes each time (about 0.5 ms per token
    measured, more than the rest of a read). A remembered token is used only while it has not
    expired and the key that verified it is still the issuer's key for its ``kid`` (looked up
    again each time, so a key withdrawn from the JWKS ends its tokens too).
    """

    issuers: dict[str, TrustedIssuer] = field(default_factory=dict)
    cache_size: int = 4096
    # token → (claims, kid, key that verified it)
    _verified: OrderedDict[str, tuple[dict[str, Any], str | None, Any]] = field(
        default_factory=OrderedDict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, issuer: TrustedIssuer) -> None:
        self.issuers[issuer.issuer] = issuer

    def remembered(self, token: str) -> dict[str, Any] | None:
        """Claims of a token verified before whose key is still current; no I/O (event loop)."""
        with self._lock:
            known = self._verified.get(token)
        if known is None or known[0]["exp"] + LEEWAY <= time.time():
            return None
        claims, kid, key = known
        current = self.issuers[claims["iss"]].current
        return claims if current is not None and current(kid) is key else None

    def validate(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises InvalidToken with the reason otherwise."""
        remembered = self.remembered(token)
        if remembered is not None:
            return remembered
        claims, kid, key = self._verify(token)
        with self._lock:
            self._verified[token] = (claims, kid, key)
            while len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> tuple[dict[str, Any], str | None, Any]:
        try:
            unverified_all = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = unverified_all["header"], unverified_all["payload"]
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the bearer token is not a JWT: {exc}") from None
        alg = header.get("alg")
        iss = unverified.get("iss")
        trusted = self.issuers.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise InvalidToken(f"tokens of issuer {iss!r} are not accepted here")
        if alg not in trusted.algorithms:
            raise InvalidToken(
                f"token algorithm {alg!r} is not accepted (use {', '.join(trusted.algorithms)})"
            )
        kid = header.get("kid")
        key = trusted.keys(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key if isinstance(key, jwt.PyJWK) else key,  # the header's alg, checked above
                algorithms=[alg],
                audience=trusted.audience,
                issuer=trusted.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the access token is not valid yet (nbf/iat)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the access token is not meant for {trusted.audience}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid access token: {exc}") from None
        return claims, kid, key


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """``scope`` (space-separated, RFC 9068) or ``scp`` (a list, some servers)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [str(s) for s in scp]
    return scope if isinstance(scope, list) else []
