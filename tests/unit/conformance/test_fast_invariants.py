"""The guide's profile invariants evaluated in Python (``validation.fast_invariants``) agree
with fhirpathpy on valid and invalid samples, every invariant of the guide's profiles that has a
Python form is covered, and a value the Python form does not handle goes to FHIRPath."""

from __future__ import annotations

from typing import Any

import pytest
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from fhirmwl.conformance import registry
from fhirmwl.validation.fast_invariants import FAST, with_fast_path

LONG = "A" * 17
SAMPLES: list[Any] = [
    "CT1",
    "",
    LONG,
    "A" * 16,
    "CT\\1",
    "ÄÖÜ" * 6,
    "urn:oid:1.2.3",
    "urn:oid:1.02.3",
    "urn:oid:3.1",
    "1.2.3",
    "urn:oid:1." + "1" * 70,
    "line\nbreak",
    12,
    None,
    [],
    {},
    {"identifier": [{"value": "X"}]},
    {"identifier": [{"system": "urn:x"}]},
    {"identifier": {"value": "X"}},
    {"identifier": []},
    {"identifier": [{"_value": {"extension": []}}]},
    {"start": "2025-01-01"},
    {"end": "2025-01-01"},
    {"basedOn": [{"reference": "ServiceRequest/abc"}]},
    {"basedOn": [{"reference": "http://x/fhir/ServiceRequest/abc/_history/2"}]},
    {"basedOn": [{"reference": "urn:uuid:1"}]},
    {"basedOn": [{"type": "ServiceRequest", "identifier": {"value": "1"}}]},
    {"basedOn": [{"reference": "CarePlan/1"}, {"reference": "ServiceRequest/x"}]},
    {"basedOn": [{"reference": "CarePlan/1"}]},
    {"basedOn": [{"reference": "ServiceRequest/" + "a" * 65}]},
    {"basedOn": []},
    {"fullUrl": "urn:uuid:1"},
    {"resource": {}},
    {"type": "collection"},
    {"type": "transaction-response"},
    {"type": "transaction"},
]


def _fhirpath(expression: str) -> Any:
    return fhirpath_compile(expression, models["r5"])


@pytest.mark.parametrize("expression", sorted(FAST))
def test_python_form_agrees_with_fhirpath(expression: str) -> None:
    reference = _fhirpath(expression)
    fast = with_fast_path(expression, reference)
    handled = 0
    for sample in SAMPLES:
        try:
            expected = reference(sample)
        except Exception:  # noqa: BLE001 - fhirpathpy refuses some inputs; so must we
            assert FAST[expression](sample) is None, sample
            continue
        handled += FAST[expression](sample) is not None
        assert fast(sample) == expected, (expression, sample)
    assert handled >= 3, expression  # the Python form really answers for the usual values


def test_every_python_form_belongs_to_a_guide_invariant() -> None:
    expressions = {
        c["expression"]
        for sd in registry.search("StructureDefinition")
        for el in (sd.get("differential") or {}).get("element", [])
        for c in el.get("constraint", [])
    }
    assert set(FAST) <= expressions
    assert len(set(FAST)) >= 8
