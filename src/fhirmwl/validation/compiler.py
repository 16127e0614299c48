"""Compile a differential StructureDefinition into a tree of element rules.

Validation runs on every create/update of a profiled resource, so the StructureDefinition is
turned once into nested :class:`ElementRule` objects (children by element name, slices by slice
name) with the FHIRPath invariants pre-compiled; ``compiled(url)`` caches the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from fhirmwl.conformance import registry
from fhirmwl.validation.fast_invariants import with_fast_path

_R5 = models["r5"]


@dataclass
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    evaluate: Callable[..., list[Any]]


@dataclass
class ElementRule:
    """Constraints on one element (or one slice of it) of a profile."""

    path: str
    name: str
    min: int | None = None
    max: str | None = None
    fixed: Any = None
    fixed_kind: str | None = None
    pattern: Any = None
    types: list[dict[str, Any]] = field(default_factory=list)
    binding: dict[str, Any] | None = None
    invariants: list[Invariant] = field(default_factory=list)
    slicing: dict[str, Any] | None = None
    slices: dict[str, ElementRule] = field(default_factory=dict)
    children: dict[str, ElementRule] = field(default_factory=dict)
    slice_name: str | None = None
    max_length: int | None = None
    min_value: Any = None
    max_value: Any = None
    # Derived once by ``finalize`` (the walker runs on every write; these are what it asks of
    # a rule each time): not part of the rule's identity.
    max_n: int | None = field(default=None, repr=False, compare=False)
    choice: bool = field(default=False, repr=False, compare=False)
    label: str = field(default="", repr=False, compare=False)  # name without ``[x]``
    value_checks: bool = field(default=True, repr=False, compare=False)
    checked_binding: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    type_codes: list[str] = field(default_factory=list, repr=False, compare=False)
    ref_types: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
    child_rules: list[ElementRule] = field(default_factory=list, repr=False, compare=False)
    sliced: bool = field(default=False, repr=False, compare=False)
    pattern_display: bool = field(default=False, repr=False, compare=False)
    # absent, this element yields no finding at all (optional, not a choice, no required slice)
    absent_ok: bool = field(default=False, repr=False, compare=False)
    # ``slicing.compile_pattern(pattern)``: built by the walker on first use
    pattern_matcher: Callable[[Any], bool] | None = field(default=None, repr=False, compare=False)
    closed: bool = field(default=False, repr=False, compare=False)
    ordered: bool = field(default=False, repr=False, compare=False)
    discriminators: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
    # (slice name, slice rule, discriminator plans): built by the walker on first use
    slice_plans: list[Any] | None = field(default=None, repr=False, compare=False)

    @property
    def max_int(self) -> int | None:
        return None if self.max in (None, "*") else int(self.max)  # type: ignore[arg-type]

    @property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    def finalize(self) -> None:
        """Derive the walker's per-rule facts (this rule, its slices and children), once the
        differential is applied: nothing a check reads changes afterwards."""
        self.max_n = self.max_int
        self.choice = self.is_choice
        self.label = self.name[:-3] if self.choice else self.name
        strength = (self.binding or {}).get("strength")
        self.checked_binding = self.binding if strength in ("required", "extensible") else None
        self.type_codes = [t["code"] for t in self.types]
        self.ref_types = [
            t
            for t in self.types
            if t["code"] in ("Reference", "CodeableReference") and t.get("targetProfile")
        ]
        self.value_checks = bool(
            self.fixed is not None
            or self.pattern is not None
            or self.max_length is not None
            or self.min_value is not None
            or self.max_value is not None
            or self.types
            or self.checked_binding
            or self.invariants
        )
        self.child_rules = list(self.children.values())
        self.pattern_display = _mentions_display(self.pattern)
        self.sliced = self.slicing is not None and bool(self.slices)
        self.closed = (self.slicing or {}).get("rules") == "closed"
        self.ordered = bool((self.slicing or {}).get("ordered"))
        self.discriminators = list((self.slicing or {}).get("discriminator", []))
        for rule in (*self.slices.values(), *self.children.values()):
            rule.finalize()
        self.absent_ok = (
            not self.choice
            and not self.min
            and not (self.sliced and any(r.min for r in self.slices.values()))
        )


@dataclass
class CompiledProfile:
    url: str
    id: str
    name: str
    type: str
    root: ElementRule

    @property
    def label(self) -> str:
        """How messages name the profile: its id and canonical URL."""
        return f"{self.id} ({self.url})"


def _mentions_display(pattern: Any) -> bool:
    """Does a pattern carry a ``display`` anywhere? Only then can the display-aware pattern
    match differ from the plain one (``slicing.matches_pattern``)."""
    if isinstance(pattern, dict):
        return "display" in pattern or any(_mentions_display(v) for v in pattern.values())
    if isinstance(pattern, list):
        return any(_mentions_display(v) for v in pattern)
    return False


def _apply(rule: ElementRule, element: dict[str, Any]) -> None:
    rule.min = element.get("min", rule.min)
    rule.max = element.get("max", rule.max)
    for key, value in element.items():
        if key.startswith("fixed"):
            rule.fixed, rule.fixed_kind = value, key[len("fixed") :]
        elif key.startswith("pattern"):
            rule.pattern = value
        elif key.startswith("minValue"):
            rule.min_value = value
        elif key.startswith("maxValue"):
            rule.max_value = value
    if "maxLength" in element:
        rule.max_length = int(element["maxLength"])
    if "type" in element:
        rule.types = element["type"]
    if "binding" in element:
        rule.binding = element["binding"]
    if "slicing" in element:
        rule.slicing = element["slicing"]
    for c in element.get("constraint", []):
        fn = with_fast_path(c["expression"], fhirpath_compile(c["expression"], _R5))
        rule.invariants.append(
            Invariant(c["key"], c.get("severity", "error"), c["human"], c["expression"], fn)
        )


def _locate(root: ElementRule, element_id: str) -> ElementRule:
    parts = element_id.split(".")
    node = root
    path = parts[0]
    for part in parts[1:]:
        name, _, slice_name = part.partition(":")
        path = f"{path}.{name}"
        child = node.children.get(name)
        if child is None:
            child = node.children[name] = ElementRule(path=path, name=name)
        node = child
        if slice_name:
            sliced = node.slices.get(slice_name)
            if sliced is None:
                sliced = ElementRule(path=path, name=name, slice_name=slice_name)
                node.slices[slice_name] = sliced
            node = sliced
    return node


def compile_profile(sd: dict[str, Any]) -> CompiledProfile:
    rtype = sd["type"]
    root = ElementRule(path=rtype, name=rtype)
    for element in sd.get("differential", {}).get("element", []):
        _apply(_locate(root, element["id"]), element)
    root.finalize()
    return CompiledProfile(sd["url"], sd["id"], sd.get("name", sd["id"]), rtype, root)


@lru_cache(maxsize=64)
def compiled(url: str) -> CompiledProfile | None:
    """The compiled profile for a canonical URL we ship, else None (cached per process)."""
    sd = registry.get_shared("StructureDefinition", url)
    return compile_profile(sd) if sd is not None else None


def base_type_of(profile_url: str) -> str | None:
    """Resource type a profile constrains (core URLs end with the type name)."""
    sd = registry.get_shared("StructureDefinition", profile_url)
    if sd is not None:
        return str(sd["type"])
    if profile_url.startswith("http://hl7.org/fhir/StructureDefinition/"):
        return profile_url.rsplit("/", 1)[1]
    return None
