"""Table-driven: every profile constraint, broken in a copy of a guide example, is reported
with the expected issue code and FHIRPath expression, and a readable message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _conformance_examples import example_store

from fhirmwl.fhir.model import PROFILE_ISR, PROFILE_SPS, PROFILE_STUDY
from fhirmwl.validation import validate

TASK = "Task-ImagingScheduledProcedureStep-Example"
ISR = "ServiceRequest-ImagingServiceRequest-Example"
RP = "ServiceRequest-ImagingRequestedProcedure-Example"
DEV = "Device-ScheduledStation-Example"
STUDY = "ImagingStudy-RequestedProcedureImagingStudy-Example"
VISIT = "Encounter-ImagingVisit-Example"
PAT = "Patient-ImagingPatient-Example"
BUNDLE = "Bundle-CreateOrderRequest-Example"

Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(res: dict[str, Any]) -> None:
        target = res
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _del(path: list[Any]) -> Mutation:
    def mutate(res: dict[str, Any]) -> None:
        target = res
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _append(key: str, item: Any) -> Mutation:
    return lambda res: res[key].append(item)


def _string_modality(res: dict[str, Any]) -> None:
    res["input"][0].pop("valueCodeableConcept")
    res["input"][0]["valueString"] = "CT"


_ACSN_2 = {
    "type": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
    },
    "value": "A999",
}

# (example, mutation, severity, issue code, expression, words the message must contain)
CASES: list[tuple[str, str, Mutation, str, str, str, tuple[str, ...]]] = [  # noqa: E501
    # imaging-service-request
    (
        "isr-acsn-missing",
        ISR,
        _del(["identifier", 0]),
        "error",
        "required",
        "ServiceRequest.identifier",
        ("accessionNumber", "at least 1", "ACSN"),
    ),
    (
        "isr-acsn-twice",
        ISR,
        _append("identifier", _ACSN_2),
        "error",
        "structure",
        "ServiceRequest.identifier",
        ("accessionNumber", "at most 1"),
    ),
    (
        "isr-acsn-no-value",
        ISR,
        _del(["identifier", 0, "value"]),
        "error",
        "required",
        "ServiceRequest.identifier[0].value",
        ("'value'", "at least 1"),
    ),
    (
        "isr-acsn-too-long",
        ISR,
        _set(["identifier", 0, "value"], "A" * 17),
        "error",
        "invariant",
        "ServiceRequest.identifier[0].value",
        ("isr-1", "16 characters"),
    ),
    (
        "isr-intent",
        ISR,
        _set(["intent"], "plan"),
        "error",
        "value",
        "ServiceRequest.intent",
        ("fixed value", '"order"', '"plan"'),
    ),
    (
        "isr-category",
        ISR,
        _set(["category", 0, "coding", 0, "code"], "1"),
        "error",
        "value",
        "ServiceRequest.category[0]",
        ("pattern", "363679005"),
    ),
    (
        "isr-subject-type",
        ISR,
        _set(["subject", "reference"], "Group/g1"),
        "error",
        "structure",
        "ServiceRequest.subject",
        ("Group", "imaging-patient"),
    ),
    # imaging-requested-procedure
    (
        "rp-based-on-missing",
        RP,
        _del(["basedOn"]),
        "error",
        "required",
        "ServiceRequest.basedOn",
        ("imagingServiceRequestRef", "at least 1"),
    ),
    (
        "rp-intent",
        RP,
        _set(["intent"], "proposal"),
        "error",
        "value",
        "ServiceRequest.intent",
        ("fixed value",),
    ),
    (
        "rp-encounter-type",
        RP,
        _set(["encounter", "reference"], "Patient/p"),
        "error",
        "structure",
        "ServiceRequest.encounter",
        ("imaging-visit",),
    ),
    (
        "rp-id-too-long",
        RP,
        _set(["identifier", 0, "value"], "R" * 20),
        "error",
        "invariant",
        "ServiceRequest.identifier[0].value",
        ("rp-1",),
    ),
    (
        "rp-id-no-value",
        RP,
        _del(["identifier", 0, "value"]),
        "error",
        "required",
        "ServiceRequest.identifier[0].value",
        ("requires at least 1",),
    ),
    # imaging-scheduled-procedure-step
    ("sps-code", TASK, _del(["code"]), "error", "required", "Task.code", ("'code'", "1..")),
    ("sps-intent", TASK, _set(["intent"], "order"), "error", "value", "Task.intent", ('"plan"',)),
    (
        "sps-period",
        TASK,
        _del(["requestedPeriod"]),
        "error",
        "required",
        "Task.requestedPeriod",
        ("requestedPeriod",),
    ),
    (
        "sps-period-start",
        TASK,
        _set(["requestedPeriod"], {"end": "2024-01-01T13:00:00Z"}),
        "error",
        "invariant",
        "Task.requestedPeriod",
        ("sps-1", "type 1"),
    ),
    (
        "sps-modality-missing",
        TASK,
        _set(["input", 0, "type", "coding", 0, "code"], "1"),
        "error",
        "required",
        "Task.input",
        ("modality", "121139"),
    ),
    (
        "sps-modality-code",
        TASK,
        _set(["input", 0, "valueCodeableConcept", "coding", 0, "code"], "XX"),
        "error",
        "code-invalid",
        "Task.input[0].valueCodeableConcept",
        ("#XX", "CID 33", "required"),
    ),
    (
        "sps-modality-type",
        TASK,
        _string_modality,
        "error",
        "structure",
        "Task.input[0].valueString",
        ("String", "CodeableConcept"),
    ),
    (
        "sps-station-missing",
        TASK,
        _del(["requestedPerformer"]),
        "error",
        "required",
        "Task.requestedPerformer",
        ("requestedPerformer",),
    ),
    (
        "sps-station-type",
        TASK,
        _set(["requestedPerformer", 0, "reference", "reference"], "Practitioner/x"),
        "error",
        "required",
        "Task.requestedPerformer",
        ("scheduledStation", "scheduled-station"),
    ),
    (
        "sps-based-on",
        TASK,
        _del(["basedOn"]),
        "error",
        "required",
        "Task.basedOn",
        ("requestedProcedureRef",),
    ),
    (
        "sps-for-type",
        TASK,
        _set(["for", "reference"], "Device/x"),
        "error",
        "structure",
        "Task.for",
        ("imaging-patient",),
    ),
    (
        "sps-id-too-long",
        TASK,
        _set(["identifier", 0, "value"], "S" * 17),
        "error",
        "invariant",
        "Task.identifier[0].value",
        ("sps-2",),
    ),
    # scheduled-station
    (
        "aet-missing",
        DEV,
        _set(["name", 0, "type"], "model-name"),
        "error",
        "required",
        "Device.name",
        ("aeTitle", "registered-name"),
    ),
    (
        "aet-too-long",
        DEV,
        _set(["name", 0, "value"], "X" * 17),
        "error",
        "invariant",
        "Device.name[0].value",
        ("aet-1",),
    ),
    (
        "aet-backslash",
        DEV,
        _set(["name", 0, "value"], "CT\\1"),
        "error",
        "invariant",
        "Device.name[0].value",
        ("aet-1", "backslash"),
    ),
    (
        "aet-twice",
        DEV,
        _append("name", {"value": "CT2", "type": "registered-name"}),
        "error",
        "structure",
        "Device.name",
        ("aeTitle", "at most 1"),
    ),
    # requested-procedure-imaging-study
    (
        "study-status",
        STUDY,
        _set(["status"], "available"),
        "error",
        "value",
        "ImagingStudy.status",
        ('"registered"',),
    ),
    (
        "study-uid-missing",
        STUDY,
        _set(["identifier", 0, "system"], "urn:ietf:rfc:3986"),
        "error",
        "required",
        "ImagingStudy.identifier",
        ("studyInstanceUid", "urn:dicom:uid"),
    ),
    (
        "study-uid-form",
        STUDY,
        _set(["identifier", 0, "value"], "urn:oid:1.02.3"),
        "error",
        "invariant",
        "ImagingStudy.identifier[0].value",
        ("study-1",),
    ),
    (
        "study-based-on",
        STUDY,
        _del(["basedOn"]),
        "error",
        "invariant",
        "ImagingStudy",
        ("study-2", "Requested Procedure or the Imaging Service Request"),
    ),
    (
        "study-based-on-task-only",
        STUDY,
        _set(["basedOn"], [{"reference": "Task/t1"}]),
        "error",
        "invariant",
        "ImagingStudy",
        ("study-2",),
    ),
    # imaging-visit / imaging-patient
    (
        "visit-subject",
        VISIT,
        _set(["subject", "reference"], "Group/1"),
        "error",
        "structure",
        "Encounter.subject",
        ("imaging-patient",),
    ),
    (
        "patient-no-id",
        PAT,
        _del(["identifier"]),
        "warning",
        "invariant",
        "Patient",
        ("ipat-1", "Patient ID"),
    ),
    # R5 base data types
    (
        "base-datetime",
        TASK,
        _set(["requestedPeriod", "start"], "2024-13-45"),
        "error",
        "value",
        "Task.requestedPeriod.start",
        ("R5 base",),
    ),
    (
        "base-unknown",
        ISR,
        _set(["accessionNumber"], "A1"),
        "error",
        "structure",
        "ServiceRequest.accessionNumber",
        ("unknown element",),
    ),
    # CreateOrderRequestBundle
    (
        "bundle-type",
        BUNDLE,
        _set(["type"], "batch"),
        "error",
        "value",
        "Bundle.type",
        ('"transaction"',),
    ),
    (
        "bundle-no-isr",
        BUNDLE,
        _del(["entry", 0]),
        "error",
        "required",
        "Bundle.entry",
        ("imagingServiceRequest", "imaging-service-request"),
    ),
    (
        "bundle-no-fullurl",
        BUNDLE,
        _del(["entry", 5, "fullUrl"]),
        "error",
        "invariant",
        "Bundle.entry[5]",
        ("cob-1",),
    ),
    (
        "bundle-entry-invalid",
        BUNDLE,
        _del(["entry", 2, "resource", "code"]),
        "error",
        "required",
        "Bundle.entry[2].resource.code",
        ("imaging-scheduled-procedure-step",),
    ),
]


@pytest.mark.parametrize(
    "name,example_name,mutate,severity,code,expression,words",
    CASES,
    ids=[c[0] for c in CASES],
)
def test_mutation_is_reported(
    example, name, example_name, mutate, severity, code, expression, words
) -> None:
    resource = example(example_name)
    mutate(resource)
    issues = validate(resource)
    hits = [i for i in issues if i.expression == expression and i.code == code]
    assert hits, f"{name}: no {code} issue at {expression}; got {issues}"
    worded = [i for i in hits if all(word in i.diagnostics for word in words)]
    assert worded, f"{name}: no message with {words}: {[i.diagnostics for i in hits]}"
    issue = worded[0]
    assert issue.severity == severity
    assert expression in issue.diagnostics
    if "R5 base" not in issue.diagnostics:
        assert "Profile " in issue.diagnostics and "StructureDefinition/" in issue.diagnostics


def _resolver(ref: str) -> dict[str, Any] | None:
    return example_store().get(ref)


def test_reference_to_nonconforming_target_is_reported(example) -> None:
    task = example(TASK)
    task["basedOn"] = [{"reference": "ServiceRequest/ImagingServiceRequest-Example"}]
    issues = validate(task, resolver=_resolver)
    assert any(
        i.expression == "Task.basedOn" and "requestedProcedureRef" in i.diagnostics for i in issues
    ), issues


def test_resolved_unclaimed_target_is_validated(example) -> None:
    rp = example(RP)
    store = example_store()
    isr = dict(store["ServiceRequest/ImagingServiceRequest-Example"])
    isr.pop("meta")
    isr["identifier"] = isr["identifier"][1:]  # no accession number → not an ISR

    def resolve(ref: str) -> dict[str, Any] | None:
        return isr if ref.endswith("ImagingServiceRequest-Example") else store.get(ref)

    issues = validate(rp, resolver=resolve)
    assert any("imagingServiceRequestRef" in i.diagnostics for i in issues), issues
    isr["identifier"].insert(0, _ACSN_2)
    assert not [i for i in validate(rp, resolver=resolve) if i.is_error]


def test_unresolvable_reference_warns_when_resolver_given(example) -> None:
    isr = example(ISR)
    issues = validate(isr, resolver=lambda ref: None)
    assert [i.severity for i in issues] == ["warning"]
    assert "cannot be resolved" in issues[0].diagnostics


def test_explicit_unknown_profile_is_an_error(example) -> None:
    issues = validate(example(ISR), profiles=["http://example.org/StructureDefinition/x"])
    assert issues[0].is_error and issues[0].code == "not-supported"


def test_explicit_profile_of_other_type(example) -> None:
    issues = validate(example(ISR), profiles=[PROFILE_SPS])
    assert issues[0].is_error and "constrains Task" in issues[0].diagnostics


def test_claimed_unknown_profile_is_a_warning(example) -> None:
    isr = example(ISR)
    isr["meta"]["profile"].append("http://example.org/StructureDefinition/x")
    issues = validate(isr)
    assert [(i.severity, i.code) for i in issues] == [("warning", "not-supported")]


def test_profile_argument_overrides_meta(example) -> None:
    isr = example(ISR)
    del isr["meta"]
    assert validate(isr) == []
    isr["identifier"] = []
    assert any(i.is_error for i in validate(isr, profiles=[PROFILE_ISR]))
    assert not [i for i in validate(example(STUDY), profiles=[PROFILE_STUDY]) if i.is_error]
