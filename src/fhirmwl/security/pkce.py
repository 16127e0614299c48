"""PKCE (RFC 7636) for the authorization code grant: only the ``S256`` method.

Pure functions, shared by both sides of the desk login: the desk makes a verifier and sends its
challenge to the authorization endpoint; the token endpoint checks the verifier against the
challenge stored with the code. ``plain`` is refused on purpose: it protects nothing when the
authorization request can be read. A dozen lines over ``hashlib`` and ``secrets``; no library
is needed for that.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

METHOD = "S256"
# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url of a SHA-256, no padding


def new_verifier() -> str:
    """A fresh code verifier: 64 random bytes → 86 base64url characters."""
    return secrets.token_urlsafe(64)


def challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.match(verifier))


def valid_challenge(value: str) -> bool:
    return bool(_CHALLENGE.match(value))


def matches(verifier: str, expected_challenge: str) -> bool:
    """Does ``verifier`` belong to ``expected_challenge`` (compared in constant time)?"""
    if not valid_verifier(verifier):
        return False
    return secrets.compare_digest(challenge(verifier), expected_challenge)
