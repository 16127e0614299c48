"""PKCE S256 (RFC 7636 Appendix B vector), password hashes and the login throttle: pure parts of
the desk login, no database or network."""

from __future__ import annotations

from fhirmwl.security import pkce, users
from fhirmwl.security.throttle import LoginThrottle

RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_the_rfc_example() -> None:
    assert pkce.challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert pkce.matches(RFC_VERIFIER, RFC_CHALLENGE)
    assert not pkce.matches(RFC_VERIFIER[:-1] + "A", RFC_CHALLENGE)
    assert not pkce.matches(RFC_CHALLENGE, RFC_CHALLENGE)  # the challenge is not its own verifier


def test_verifier_grammar() -> None:
    fresh = pkce.new_verifier()
    assert pkce.valid_verifier(fresh) and len(fresh) >= 43
    assert pkce.valid_challenge(pkce.challenge(fresh))
    assert not pkce.valid_verifier("short")
    assert not pkce.valid_verifier("a" * 129)
    assert not pkce.valid_verifier("a" * 42 + " ")
    assert not pkce.matches("a" * 42, pkce.challenge("a" * 42))  # too short, even if it hashes
    assert not pkce.valid_challenge(RFC_CHALLENGE + "=")


def test_password_hash_is_salted_and_checked() -> None:
    one, two = users.hash_password("correct horse"), users.hash_password("correct horse")
    assert one != two and one.startswith("scrypt$") and "correct" not in one
    assert users.check_password("correct horse", one)
    assert users.check_password("correct horse", two)
    assert not users.check_password("correct hors", one)
    assert not users.check_password("correct horse", "md5$abc")
    assert not users.check_password("correct horse", "garbage")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_locks_a_name_after_five_failures_and_doubles() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=5, base=30, cap=100, clock=clock)
    for _ in range(5):
        assert throttle.wait("alice") == 0
        throttle.failed("alice")
    assert throttle.wait("alice") == 30
    assert throttle.wait("bob") == 0  # other names are not affected
    clock.now += 30
    assert throttle.wait("alice") == 0
    throttle.failed("alice")  # the sixth failure: 60 s
    assert throttle.wait("alice") == 60
    throttle.failed("alice")
    throttle.failed("alice")  # 240 s, capped
    assert throttle.wait("alice") == 100
    throttle.succeeded("alice")
    assert throttle.wait("alice") == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(free=1, max_names=3, clock=Clock())
    for name in ("a", "b", "c", "d"):
        throttle.failed(name)
    assert throttle.wait("a") == 0  # the oldest name was forgotten
    assert throttle.wait("d") > 0
