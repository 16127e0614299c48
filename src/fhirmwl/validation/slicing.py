"""Slice discrimination: which slice of a sliced element an item belongs to.

Supports the discriminator types the guide's profiles use: ``value`` / ``pattern`` (fixed or
pattern value at a path), ``type`` and ``profile`` on ``resolve()`` / ``reference.resolve()`` /
``resource``. Conformance to a profile is decided by the caller-supplied ``conforms`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirmwl.validation.compiler import ElementRule, base_type_of

Resolver = Callable[[str], dict[str, Any] | None]


def values_at(value: Any, path: str) -> list[Any]:
    """Values at a simple dotted path ("$this" = the value itself); lists are flattened."""
    current = [value]
    if path in ("", "$this"):
        return current
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                found = item[part]
                nxt.extend(found if isinstance(found, list) else [found])
        current = nxt
    return current


def rule_at(rule: ElementRule, path: str) -> ElementRule | None:
    node: ElementRule | None = rule
    if path in ("", "$this"):
        return node
    for part in path.split("."):
        node = node.children.get(part) if node else None
    return node


# Coding elements that carry no meaning of their own: a coded pattern matches on system + code
# (+ version where the pattern has one). ``display`` is checked only by ``display_differs``.
_INSIGNIFICANT = frozenset({"display", "userSelected"})


def _is_coding(pattern: dict[str, Any]) -> bool:
    return "code" in pattern and ("system" in pattern or "display" in pattern)


def matches_pattern(value: Any, pattern: Any, *, display: bool = False) -> bool:
    """FHIR pattern semantics: every element of the pattern is present in the value; in a
    Coding ``display`` is insignificant unless ``display`` is set (then it must equal the
    pattern's when the value has one — a missing display never differs)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        coding = _is_coding(pattern)
        for k, v in pattern.items():
            if coding and k in _INSIGNIFICANT:
                if display and k == "display" and k in value and value[k] != v:
                    return False
                continue
            if k not in value or not matches_pattern(value[k], v, display=display):
                return False
        return True
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(i, p, display=display) for i in items) for p in pattern)
    return bool(value == pattern)


Matcher = Callable[[Any], bool]


def compile_pattern(pattern: Any) -> Matcher:
    """``lambda value: matches_pattern(value, pattern)`` with the pattern's structure decided
    once (which keys count, which are scalars): a profile's patterns are checked on every
    write, on every item of a sliced element."""
    if isinstance(pattern, dict):
        coding = _is_coding(pattern)
        kept = [(k, v) for k, v in pattern.items() if not (coding and k in _INSIGNIFICANT)]
        scalars = [(k, v) for k, v in kept if not isinstance(v, dict | list)]
        nested = [(k, compile_pattern(v)) for k, v in kept if isinstance(v, dict | list)]

        def match_dict(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for k, v in scalars:
                if k not in value or not bool(value[k] == v):
                    return False
            return all(k in value and m(value[k]) for k, m in nested)

        return match_dict
    if isinstance(pattern, list):
        parts = [compile_pattern(p) for p in pattern]

        def match_list(value: Any) -> bool:
            items = value if isinstance(value, list) else [value]
            return all(any(m(i) for i in items) for m in parts)

        return match_list
    return lambda value: bool(value == pattern)


def reference_of(value: Any, path: str) -> str | None:
    """The reference string an item points at for a ``…resolve()`` discriminator path."""
    prefix = path[: -len("resolve()")].rstrip(".")
    target = values_at(value, prefix) if prefix else [value]
    for item in target:
        if isinstance(item, dict) and isinstance(item.get("reference"), str):
            return str(item["reference"])
    return None


def literal_type(reference: str) -> str | None:
    """Resource type named by a relative or absolute literal reference, if any."""
    if reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def exists_discriminator(slice_rule: ElementRule, item: Any, path: str) -> bool | None:
    """``exists``: the slice requires the element at ``path`` (min >= 1) or forbids it
    (max = 0); None when the slice says neither."""
    sub = rule_at(slice_rule, path)
    if sub is None:
        return None
    present = bool(values_at(item, path))
    if sub.max == "0":
        return not present
    if sub.min:
        return present
    return None


def extension_url(slice_rule: ElementRule) -> str | None:
    """The URL an extension slice stands for: its fixed ``url``, else its type's profile (an
    extension slice is defined by ``type.profile`` = the extension's canonical)."""
    sub = slice_rule.children.get("url")
    if sub is not None and isinstance(sub.fixed, str):
        return sub.fixed
    for t in slice_rule.types:
        if t.get("code") == "Extension" and t.get("profile"):
            return str(t["profile"][0]).split("|")[0]
    return None


def value_discriminator(slice_rule: ElementRule, item: Any, path: str) -> bool | None:
    """True/False when the slice fixes a value at ``path``; None when it cannot discriminate."""
    if path == "url" and (url := extension_url(slice_rule)) is not None:
        return isinstance(item, dict) and item.get("url") == url
    sub = rule_at(slice_rule, path)
    if sub is None or (sub.fixed is None and sub.pattern is None):
        return None
    found = values_at(item, path)
    if sub.fixed is not None:
        return any(v == sub.fixed for v in found)
    return any(matches_pattern(v, sub.pattern) for v in found)


def slice_profiles(slice_rule: ElementRule, path: str) -> list[str]:
    """Profiles a slice requires of the item at a profile/type discriminator path."""
    if path == "resource":
        res_rule = slice_rule.children.get("resource")
        types = res_rule.types if res_rule else []
        return [p for t in types for p in t.get("profile", [])]
    return [p for t in slice_rule.types for p in t.get("targetProfile", [])]


def target_of(
    item: Any, path: str, resolver: Resolver | None
) -> tuple[dict[str, Any] | None, str | None]:
    """(resource, type) an item designates for a profile/type discriminator."""
    if path == "resource":
        res = item.get("resource") if isinstance(item, dict) else None
        return (res, res.get("resourceType")) if isinstance(res, dict) else (None, None)
    ref = reference_of(item, path)
    if ref is None:
        return None, None
    resolved = resolver(ref) if resolver else None
    if resolved is not None:
        return resolved, resolved.get("resourceType")
    return None, literal_type(ref)


def type_allowed(rtype: str | None, profiles: list[str]) -> bool:
    return rtype is not None and any(base_type_of(p) == rtype for p in profiles)


# A discriminator of one slice, decided once per (slice, discriminator) instead of per item:
# ("url", url) | ("fixed", path, value) | ("pattern", path, pattern, matcher) | ("absent", path) |
# ("present", path) | ("ref", kind, path, profiles) | ("never",). ``discriminates`` gives the
# same verdict as ``value_discriminator`` / ``exists_discriminator`` for the first five.
Plan = tuple[Any, ...]
_NEVER: Plan = ("never",)


def plan_of(slice_rule: ElementRule, disc: dict[str, Any]) -> Plan:
    kind, path = disc.get("type"), disc.get("path", "$this")
    if kind in ("value", "pattern"):
        if path == "url" and (url := extension_url(slice_rule)) is not None:
            return ("url", url)
        sub = rule_at(slice_rule, path)
        if sub is None or (sub.fixed is None and sub.pattern is None):
            return _NEVER
        if sub.fixed is not None:
            return ("fixed", path, sub.fixed)
        return ("pattern", path, sub.pattern, compile_pattern(sub.pattern))
    if kind == "exists":
        sub = rule_at(slice_rule, path)
        if sub is None:
            return _NEVER
        if sub.max == "0":
            return ("absent", path)
        return ("present", path) if sub.min else _NEVER
    if kind in ("profile", "type"):
        return ("ref", kind, path, slice_profiles(slice_rule, path))
    return _NEVER


def discriminates(plan: Plan, item: Any) -> bool:
    """Verdict of a value/pattern/exists plan (not ``ref``: the walker resolves those)."""
    what = plan[0]
    if what == "url":
        return isinstance(item, dict) and item.get("url") == plan[1]
    if what == "fixed":
        fixed = plan[2]
        return any(v == fixed for v in values_at(item, plan[1]))
    if what == "pattern":
        matcher = plan[3]
        return any(matcher(v) for v in values_at(item, plan[1]))
    if what == "absent":
        return not values_at(item, plan[1])
    if what == "present":
        return bool(values_at(item, plan[1]))
    return False
