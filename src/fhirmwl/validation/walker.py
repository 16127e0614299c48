"""Walk a resource along a compiled profile and collect issues.

One :class:`Walker` checks one resource against one profile: cardinality, fixed and pattern
values, choice types, reference targets, required bindings, invariants and slicing. Every
message names the profile, the FHIRPath expression and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fhirmwl.validation import slicing as sl
from fhirmwl.validation.compiler import CompiledProfile, ElementRule, base_type_of, compiled
from fhirmwl.validation.issues import Issue
from fhirmwl.validation.terminology import codings_of, display, expansion

Item = tuple[Any, str]


@dataclass
class State:
    """Shared by all walkers of one validation run: resolver and conformance cache."""

    resolver: sl.Resolver | None
    results: dict[tuple[int, str], bool] = field(default_factory=dict)
    in_progress: set[tuple[int, str]] = field(default_factory=set)

    def conforms(self, resource: dict[str, Any], url: str) -> bool:
        """Does ``resource`` conform to profile ``url``? A claim in meta.profile is trusted."""
        if url in (resource.get("meta") or {}).get("profile", []):
            return True
        if resource.get("resourceType") != base_type_of(url):
            return False
        key = (id(resource), url)
        if key in self.results:
            return self.results[key]
        profile = compiled(url)
        if profile is None or key in self.in_progress:
            return True
        self.in_progress.add(key)
        try:
            walker = Walker(profile, self)
            walker.check_resource(resource, profile.type)
            ok = not any(i.is_error for i in walker.issues)
        finally:
            self.in_progress.discard(key)
        self.results[key] = ok
        return ok


def _comparable(value: Any, bound: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(bound, bool):
        return False
    if isinstance(value, numbers) and isinstance(bound, numbers):
        return True
    return isinstance(value, str) and isinstance(bound, str) and len(value) == len(bound)


@lru_cache(maxsize=32)
def _known_codes(vs_url: str) -> frozenset[str]:
    """The codes of a value set's expansion, whatever their system (cached with it)."""
    return frozenset(c for _, c in expansion(vs_url) or ())


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


def _items(parent: dict[str, Any], rule: ElementRule, parent_expr: str) -> list[Item]:
    if rule.choice:
        prefix = rule.label
        return [
            (v, f"{parent_expr}.{k}")
            for k, v in parent.items()
            if k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isupper()
        ]
    value = parent.get(rule.name)
    if value is None:
        return []
    if isinstance(value, list):
        return [(v, f"{parent_expr}.{rule.name}[{i}]") for i, v in enumerate(value)]
    return [(value, f"{parent_expr}.{rule.name}")]


class Walker:
    def __init__(self, profile: CompiledProfile, state: State) -> None:
        self.profile = profile
        self.state = state
        self.issues: list[Issue] = []
        self.contained: dict[str, dict[str, Any]] = {}

    def check_resource(self, resource: dict[str, Any], expr: str) -> None:
        """Check a whole resource; ``#id`` references resolve among its contained resources."""
        self.contained = {
            f"#{c['id']}": c
            for c in resource.get("contained") or []
            if isinstance(c, dict) and isinstance(c.get("id"), str)
        }
        self.check_value(self.profile.root, resource, expr)

    def resolve(self, reference: str) -> dict[str, Any] | None:
        if reference.startswith("#"):
            return self.contained.get(reference)
        return self.state.resolver(reference) if self.state.resolver else None

    def issue(self, severity: str, code: str, expr: str, text: str) -> None:
        msg = f"Profile {self.profile.label}: {expr}: {text}"
        self.issues.append(Issue(severity, code, msg, expr))

    # -- element level ------------------------------------------------------------------
    def check_value(self, rule: ElementRule, value: Any, expr: str) -> None:
        if rule.value_checks:
            self._check_own(rule, value, expr)
        if rule.child_rules and isinstance(value, dict):
            for child in rule.child_rules:
                if child.absent_ok and value.get(child.name) is None:
                    continue  # (what ``check_child`` would conclude)
                self.check_child(child, value, expr)

    def _check_own(self, rule: ElementRule, value: Any, expr: str) -> None:
        """The checks of the value itself (``rule.value_checks``: the rule has any)."""
        if rule.fixed is not None and value != rule.fixed:
            self.issue(
                "error",
                "value",
                expr,
                f"must have the fixed value {_short(rule.fixed)}, found {_short(value)}",
            )
        if rule.pattern is not None:
            matcher = rule.pattern_matcher
            if matcher is None:
                matcher = rule.pattern_matcher = sl.compile_pattern(rule.pattern)
            self._check_pattern(rule.pattern, value, expr, rule.pattern_display, matcher)
        if rule.max_length is not None or rule.min_value is not None or rule.max_value is not None:
            self._check_limits(rule, value, expr)
        if rule.types:
            self._check_types(rule, value, expr)
        if rule.checked_binding:
            self._check_binding(rule.checked_binding, value, expr)
        for inv in rule.invariants:
            self._check_invariant(inv, value, expr)

    def _check_limits(self, rule: ElementRule, value: Any, expr: str) -> None:
        """``maxLength`` on strings; ``minValue[x]`` / ``maxValue[x]`` on numbers and on dates
        or times (compared as ISO strings of the same form)."""
        if rule.max_length is not None and isinstance(value, str) and len(value) > rule.max_length:
            self.issue(
                "error",
                "too-long",
                expr,
                f"at most {rule.max_length} characters (maxLength), found {len(value)}",
            )
        for bound, below in ((rule.min_value, True), (rule.max_value, False)):
            if bound is None or not _comparable(value, bound):
                continue
            if (value < bound) if below else (value > bound):
                word = "minValue" if below else "maxValue"
                self.issue("error", "value", expr, f"{value!r} is outside {word} {bound!r}")

    def _check_pattern(
        self,
        pattern: Any,
        value: Any,
        expr: str,
        display: bool = True,
        matcher: sl.Matcher | None = None,
    ) -> None:
        """``display``: the pattern carries a display (else the display check cannot differ);
        ``matcher``: the pattern compiled (``slicing.compile_pattern``)."""
        matched = matcher(value) if matcher else sl.matches_pattern(value, pattern)
        if not matched:
            self.issue(
                "error",
                "value",
                expr,
                f"must match the pattern {_short(pattern)}, found {_short(value)}",
            )
        elif display and not sl.matches_pattern(value, pattern, display=True):
            self.issue(
                "warning",
                "value",
                expr,
                f"the code matches the pattern {_short(pattern)} but its display differs "
                f"(found {_short(value)}); display is not significant",
            )

    def check_child(self, rule: ElementRule, parent: dict[str, Any], parent_expr: str) -> None:
        items = _items(parent, rule, parent_expr)
        count, mn, mx = len(items), rule.min, rule.max_n
        name = rule.label
        if not ((mn is None or count >= mn) and (mx is None or count <= mx)):
            what = f"element '{name}'"
            if not items:  # the slice descriptions only go into a message about a missing one
                needed = [
                    f"'{n}' ({self._describe(rule, r)})" for n, r in rule.slices.items() if r.min
                ]
                if needed:
                    what += " (with the required slice " + ", ".join(needed) + ")"
            self._cardinality(rule, count, f"{parent_expr}.{name}", what)
        for value, expr in items:
            self.check_value(rule, value, expr)
        if rule.sliced and (items or not mn):
            # (an absent element already failed its own minimum: no echo per required slice)
            self._check_slices(rule, items, f"{parent_expr}.{name}")

    def _cardinality(
        self, rule: ElementRule, count: int, expr: str, what: str | Callable[[], str]
    ) -> None:
        mx = rule.max_n
        if (rule.min is None or count >= rule.min) and (mx is None or count <= mx):
            return
        what = what if isinstance(what, str) else what()  # described only for a message
        card = f"{rule.min if rule.min is not None else 0}..{rule.max or '*'}"
        if rule.min is not None and count < rule.min:
            self.issue(
                "error",
                "required",
                expr,
                f"{what} requires at least {rule.min} occurrence(s) (cardinality {card}), "
                f"found {count}",
            )
        if mx is not None and count > mx:
            self.issue(
                "error",
                "structure",
                expr,
                f"{what} allows at most {mx} occurrence(s) (cardinality {card}), found {count}",
            )

    # -- types and references ------------------------------------------------------------
    def _check_types(self, rule: ElementRule, value: Any, expr: str) -> None:
        codes = rule.type_codes
        if rule.choice:
            suffix = expr.rsplit(".", 1)[-1][len(rule.name) - 3 :]
            if suffix not in codes and suffix[:1].lower() + suffix[1:] not in codes:
                self.issue(
                    "error",
                    "structure",
                    expr,
                    f"type {suffix} not allowed; expected " + " or ".join(codes),
                )
                return
        if isinstance(value, dict) and "resourceType" in value and codes[0][:1].isupper():
            if value["resourceType"] not in codes:
                self.issue(
                    "error",
                    "structure",
                    expr,
                    f"resource must be a {' or '.join(codes)}, found {value['resourceType']}",
                )
            return
        for t in rule.ref_types:
            self._check_reference(t, value, expr)

    def _check_reference(self, type_: dict[str, Any], value: Any, expr: str) -> None:
        ref_holder = value.get("reference") if type_["code"] == "CodeableReference" else value
        ref_expr = f"{expr}.reference" if type_["code"] == "CodeableReference" else expr
        if not isinstance(ref_holder, dict) or not isinstance(ref_holder.get("reference"), str):
            return
        ref = ref_holder["reference"]
        profiles = type_["targetProfile"]
        wanted = " or ".join(profiles)
        resolver = self.state.resolver
        resolved = self.resolve(ref)
        rtype = resolved.get("resourceType") if resolved else None
        rtype = rtype or ref_holder.get("type") or sl.literal_type(ref)
        if rtype is not None and not sl.type_allowed(rtype, profiles):
            self.issue(
                "error",
                "structure",
                ref_expr,
                f"reference '{ref}' points to a {rtype}; expected Reference({wanted})",
            )
            return
        if resolved is None:
            if resolver is not None or ref.startswith("#"):
                where = " among the contained resources" if ref.startswith("#") else ""
                self.issue(
                    "error" if ref.startswith("#") else "warning",
                    "not-found",
                    ref_expr,
                    f"reference '{ref}' cannot be resolved{where}; target profile {wanted} "
                    "not checked",
                )
            return
        if not any(self.state.conforms(resolved, p) for p in profiles):
            self.issue(
                "error",
                "structure",
                ref_expr,
                f"referenced resource '{ref}' does not conform to {wanted}",
            )

    # -- terminology and invariants ------------------------------------------------------
    def _check_binding(self, binding: dict[str, Any], value: Any, expr: str) -> None:
        vs_url = binding.get("valueSet", "")
        codes = expansion(vs_url)
        if codes is None:
            self.issue(
                "warning",
                "not-supported",
                expr,
                f"value set {vs_url} is not available; binding not checked",
            )
            return
        pairs = codings_of(value)
        known_codes = _known_codes(vs_url)
        ok = any((s, c) in codes if s is not None else c in known_codes for s, c in pairs)
        if not ok:
            strength = binding.get("strength")
            found = ", ".join(f"{s or ''}#{c}" for s, c in pairs) or "no coding"
            self.issue(
                "error" if strength == "required" else "warning",
                "code-invalid",
                expr,
                f"{found} is not in the value set {display(vs_url)} ({strength} binding)",
            )

    def _check_invariant(self, inv: Any, value: Any, expr: str) -> None:
        try:
            result = inv.evaluate(value)
        except Exception as exc:  # fhirpathpy raises bare exceptions on bad input
            self.issue(
                "error",
                "exception",
                expr,
                f"constraint {inv.key} could not be "
                f"evaluated ({exc}); expression: {inv.expression}",
            )
            return
        if result and all(r is True for r in result):
            return
        if result == [] or any(r is False for r in result):
            self.issue(
                inv.severity,
                "invariant",
                expr,
                f"constraint {inv.key} failed: {inv.human} (expression: {inv.expression})",
            )

    # -- slicing --------------------------------------------------------------------------
    def _check_slices(self, rule: ElementRule, items: list[Item], expr: str) -> None:
        assigned: dict[str, list[Item]] = {name: [] for name in rule.slices}
        order: list[int] = []
        names = list(rule.slices)
        for value, item_expr in items:
            name = self._match_slice(rule, value, item_expr, assigned)
            if name is None:
                if rule.closed:
                    self.issue(
                        "error",
                        "structure",
                        item_expr,
                        f"matches none of the slices {names} and the slicing is closed",
                    )
                continue
            assigned[name].append((value, item_expr))
            order.append(names.index(name))
        for name, slice_rule in rule.slices.items():
            taken = assigned[name]
            mn, mx = slice_rule.min, slice_rule.max_n
            if not ((mn is None or len(taken) >= mn) and (mx is None or len(taken) <= mx)):
                what = f"slice '{name}' ({self._describe(rule, slice_rule)})"
                self._cardinality(slice_rule, len(taken), expr, what)
            for value, item_expr in taken:
                self.check_value(slice_rule, value, item_expr)
        if rule.ordered and order != sorted(order):
            self.issue("error", "structure", expr, f"slices must appear in the order {names}")

    def _match_slice(
        self, rule: ElementRule, value: Any, expr: str, assigned: dict[str, list[Item]]
    ) -> str | None:
        plans = rule.slice_plans
        if plans is None:  # decided once per sliced element (the compiled profile is cached)
            plans = rule.slice_plans = [
                (name, slice_rule, [sl.plan_of(slice_rule, d) for d in rule.discriminators])
                for name, slice_rule in rule.slices.items()
            ]
        for name, slice_rule, discs in plans:
            if all(self._discriminates(p, slice_rule, value, len(assigned[name])) for p in discs):
                return name
        return None

    def _discriminates(
        self, plan: sl.Plan, slice_rule: ElementRule, value: Any, taken: int
    ) -> bool:
        if plan[0] != "ref":
            return sl.discriminates(plan, value)
        _, kind, path, profiles = plan
        target, rtype = sl.target_of(value, path, self.resolve)
        if target is not None:
            if kind == "type":
                return sl.type_allowed(target.get("resourceType"), profiles)
            return any(self.state.conforms(target, p) for p in profiles)
        # Unresolvable reference: fall back to the literal type (none for a ``urn:`` fullUrl
        # outside its Bundle), filling slices in order. The reference itself is reported once,
        # with the same severity as anywhere else, by ``_check_reference``.
        mx = slice_rule.max_n
        if mx is not None and taken >= mx:
            return False
        if rtype is None:
            return sl.reference_of(value, path) is not None
        return sl.type_allowed(rtype, profiles)

    @staticmethod
    def _describe(rule: ElementRule, slice_rule: ElementRule) -> str:
        parts = []
        for disc in (rule.slicing or {}).get("discriminator", []):
            path = disc.get("path", "$this")
            if path == "url" and (url := sl.extension_url(slice_rule)):
                parts.append(f"url = {url}")
            elif disc.get("type") == "exists":
                sub = sl.rule_at(slice_rule, path)
                parts.append(f"{path} {'absent' if sub and sub.max == '0' else 'present'}")
            elif disc.get("type") in ("value", "pattern"):
                sub = sl.rule_at(slice_rule, path)
                fixed = (
                    None if sub is None else (sub.fixed if sub.fixed is not None else sub.pattern)
                )
                parts.append(f"{path} = {_short(fixed)}")
            else:
                wanted = " or ".join(sl.slice_profiles(slice_rule, path))
                parts.append(f"{path} conforming to {wanted}")
        return "; ".join(parts)
