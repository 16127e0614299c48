"""The core invariants checked on every write: each Python form agrees with its FHIRPath
expression (evaluated by fhirpathpy) on sample elements, and a violation is one issue with the
constraint key and the element's FHIRPath."""

from __future__ import annotations

from typing import Any

import pytest
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from fhirmwl.fhir.core_invariants import CORE, DOMAIN_RESOURCE, CoreInvariant
from fhirmwl.fhir.structure import structure_issues

SAMPLES: dict[str, list[dict[str, Any]]] = {
    "Reference": [{"reference": "Patient/1"}, {"display": "x"}, {"type": "Patient"}],
    "ContactPoint": [{"value": "1"}, {"system": "phone", "value": "1"}, {"system": "email"}],
    "Quantity": [{"value": 1, "code": "mg"}, {"code": "mg", "system": "http://unitsofmeasure.org"}],
    "Attachment": [{"data": "AA=="}, {"data": "AA==", "contentType": "text/plain"}, {}],
    "PatientContact": [{"gender": "male"}, {"name": {"family": "X"}}],
    "ServiceRequest": [{"orderDetail": [{"parameter": []}]}, {"code": {}, "orderDetail": [{}]}],
}
DOMAIN_SAMPLES = [
    {"resourceType": "Patient", "contained": [{"resourceType": "Device", "id": "d"}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Device", "contained": [{}]}]},
    {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Device", "meta": {"versionId": "1"}}],
    },
    {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Device", "meta": {"security": [{}]}}],
    },
]
CASES = [(inv, s) for name, invs in CORE.items() for inv in invs for s in SAMPLES.get(name, [])]
CASES += [(inv, s) for inv in DOMAIN_RESOURCE for s in DOMAIN_SAMPLES]


@pytest.mark.parametrize(("inv", "sample"), CASES, ids=lambda v: getattr(v, "key", ""))
def test_python_form_agrees_with_fhirpath(inv: CoreInvariant, sample: dict[str, Any]) -> None:
    evaluated = fhirpath_compile(inv.expression, models["r5"])(sample)
    assert evaluated in ([True], [False]), evaluated
    assert inv.holds(sample) is evaluated[0]


def test_period_order_with_time_zones() -> None:
    per1 = CORE["Period"][0]
    assert per1.holds({"start": "2024-01-01T12:00:00+01:00", "end": "2024-01-01T11:30:00Z"})
    assert not per1.holds({"start": "2024-01-02", "end": "2024-01-01T23:00:00Z"})
    assert per1.holds({"start": "2024-01-01", "end": "2024-01-01T00:00:00Z"})  # boundaries


@pytest.mark.parametrize(
    ("resource", "key", "expression"),
    [
        (
            {
                "resourceType": "Task",
                "status": "ready",
                "intent": "plan",
                "requestedPeriod": {"start": "2024-01-02T08:00:00Z", "end": "2024-01-01T08:00:00Z"},
            },
            "per-1",
            "Task.requestedPeriod",
        ),
        (
            {
                "resourceType": "Task",
                "status": "ready",
                "intent": "plan",
                "for": {"type": "Patient"},
            },
            "ref-2",
            "Task.for",
        ),
        (
            {"resourceType": "Patient", "telecom": [{"value": "+41 1"}]},
            "cpt-2",
            "Patient.telecom[0]",
        ),
        (
            {
                "resourceType": "Patient",
                "contained": [
                    {"resourceType": "Device", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}}
                ],
            },
            "dom-4",
            "Patient",
        ),
    ],
)
def test_violation_is_one_issue(resource: dict[str, Any], key: str, expression: str) -> None:
    issues = structure_issues(resource["resourceType"], resource)
    assert [(i["code"], i["expression"]) for i in issues] == [("invariant", [expression])]
    assert key in issues[0]["diagnostics"]
