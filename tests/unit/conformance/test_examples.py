"""The guide's example instances (§2, in our resource model) validate without any issue,
alone, with a resolver over the other examples, and inside the order Bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _conformance_examples import example_names, example_store, load_example
from tests.conftest import require_corpus

from fhirmwl.conformance.registry import PROFILE_CREATE_ORDER_BUNDLE
from fhirmwl.validation import to_operation_outcome, validate, validate_bundle

CORPUS = Path(__file__).resolve().parents[3] / "../shared/corpus/fhir"


@pytest.mark.parametrize("name", example_names())
def test_example_is_valid(name: str) -> None:
    resource = load_example(name)
    assert resource["meta"]["profile"], "examples claim their profile"
    assert validate(resource) == []


@pytest.mark.parametrize("name", [n for n in example_names() if not n.startswith("Bundle")])
def test_example_is_valid_with_resolver(name: str) -> None:
    store = example_store()
    assert validate(load_example(name), resolver=store.get) == []


def test_unclaimed_entries_of_an_order_bundle_are_validated_by_type() -> None:
    bundle = load_example("Bundle-CreateOrderRequest-Example")
    for entry in bundle["entry"]:
        entry["resource"].pop("meta")
    assert validate_bundle(bundle) == []
    del bundle["entry"][2]["resource"]["requestedPeriod"]  # the Task
    issues = validate_bundle(bundle)
    assert any(i.expression == "Bundle.entry[2].resource.requestedPeriod" for i in issues)


def test_bundle_profile_argument() -> None:
    bundle = load_example("Bundle-CreateOrderRequest-Example")
    del bundle["meta"]
    assert validate(bundle, profiles=[PROFILE_CREATE_ORDER_BUNDLE]) == []


def test_operation_outcome_shape() -> None:
    ok = to_operation_outcome([])
    assert ok["issue"][0]["severity"] == "information"
    task = load_example("Task-ImagingScheduledProcedureStep-Example")
    task["intent"] = "order"
    outcome = to_operation_outcome(validate(task))
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Task.intent"]
    assert outcome["issue"][0]["code"] == "value"


def test_corpus_imaging_study_against_profile() -> None:
    """A real R5 ImagingStudy (HL7 test case) is valid R5 but not a requested-procedure study."""
    path = CORPUS / "hl7fhir_R5_imagingstudy_ist-4-pass_minimal.json"
    require_corpus(path)
    study = json.loads(path.read_text(encoding="utf-8"))
    assert validate(study) == []
    study["meta"] = {
        "profile": [
            "http://hl7.org/fhir/uv/imaging-service-request-ig/"
            "StructureDefinition/requested-procedure-imaging-study"
        ]
    }
    found = {(i.code, i.expression) for i in validate(study)}
    assert ("value", "ImagingStudy.status") in found
    assert ("required", "ImagingStudy.identifier") in found
    assert ("invariant", "ImagingStudy") in found  # study-2: basedOn the RP or the ISR
