"""SMART App Launch scopes: the grammar, and whether granted scopes cover what a request needs.

Pure functions over strings, so every rule of docs/auth.md is a row in a table-driven test. A
scope is ``context/Type.permissions``: context ``patient``, ``user`` or ``system``; ``Type`` a
resource type or ``*``; permissions SMART v2 letters in the order ``cruds`` or the SMART v1
words ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*`` (= ``cruds``). Granular v2 scopes
with a ``?param=value`` restriction are not granted at all (we would have to enforce the
restriction on every search and read; refusing is the safe reading). Other scopes (``openid``,
``launch``, ``offline_access`` …) grant no data access and are ignored.

A ``Need`` is one permission on one resource type. ``explicit`` needs (creating or changing a
Subscription, which can ship every new order to a URL of the caller's choice) are not satisfied
by a ``*`` scope: the client needs ``system/Subscription.c`` (or ``.u``) by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

CONTEXTS = ("patient", "user", "system")
PERMISSIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Subscription writes choose where new orders are sent: a "*" scope is not enough.
EXPLICIT_TYPES = frozenset({"Subscription"})
EXPLICIT_PERMISSIONS = "cu"
_SCOPE = re.compile(r"^(patient|user|system)/([A-Z][A-Za-z]*|\*)\.([a-z*]+)$")
_V2 = re.compile(r"^c?r?u?d?s?$")


@dataclass(frozen=True)
class Scope:
    context: str  # patient | user | system
    resource_type: str  # a FHIR resource type or "*"
    permissions: str  # subset of "cruds", in that order

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self.permissions}"


@dataclass(frozen=True)
class Need:
    resource_type: str  # "*" = every resource type (system-wide history, unknown operations)
    permission: str  # one letter of "cruds"
    explicit: bool = False  # a "*" scope does not cover it (Subscription writes)

    def scope(self, context: str = "system") -> str:
        return f"{context}/{self.resource_type}.{self.permission}"


@lru_cache(maxsize=4096)  # the same few scope strings arrive with every request
def parse_scope(text: str) -> Scope | None:
    """One scope string → ``Scope``; None for scopes that grant no data access here."""
    match = _SCOPE.match(text.strip())
    if match is None:
        return None
    context, rtype, perms = match.groups()
    perms = _V1.get(perms, perms)
    if not perms or not _V2.match(perms):
        return None
    return Scope(context, rtype, perms)


def parse_scopes(text: str | Iterable[str]) -> list[Scope]:
    items = text.split() if isinstance(text, str) else list(text)
    return [s for s in (parse_scope(item) for item in items) if s is not None]


def covers(scope: Scope, need: Need) -> bool:
    if need.permission not in scope.permissions:
        return False
    if scope.resource_type == need.resource_type:
        return True
    return scope.resource_type == "*" and not need.explicit


def within(requested: Scope, allowed: Iterable[Scope]) -> bool:
    """Is ``requested`` no wider than one ``allowed`` scope (same context, type, fewer letters)?"""
    named = requested.resource_type in EXPLICIT_TYPES and any(
        p in EXPLICIT_PERMISSIONS for p in requested.permissions
    )
    kinds = (requested.resource_type,) if named else ("*", requested.resource_type)
    return any(
        a.context == requested.context
        and a.resource_type in kinds
        and set(requested.permissions) <= set(a.permissions)
        for a in allowed
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    missing: Need | None = None  # the first need no scope covers
    patient_only: bool = False  # some need is covered only by a patient/ scope


def authorize(scopes: Iterable[Scope], needs: Iterable[Need]) -> Decision:
    """Every need must be covered; ``user/`` and ``system/`` scopes cover without restriction,
    ``patient/`` scopes only inside the token's patient compartment (the caller enforces it)."""
    granted = list(scopes)
    patient_only = False
    for need in needs:
        wide = [s for s in granted if s.context != "patient" and covers(s, need)]
        if wide:
            continue
        if any(s.context == "patient" and covers(s, need) for s in granted):
            patient_only = True
            continue
        return Decision(False, need)
    return Decision(True, None, patient_only)
