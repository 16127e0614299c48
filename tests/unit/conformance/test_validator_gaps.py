"""Constraint kinds the guide's profiles do not use yet but a derived profile may: maxLength,
minValue/maxValue, ``exists`` discriminators, extension slices by URL, ``#id`` references to
contained resources. Small differential StructureDefinitions, compiled like the shipped ones."""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import el, slicing, structure_definition
from fhirmwl.validation.compiler import compile_profile
from fhirmwl.validation.issues import Issue
from fhirmwl.validation.walker import State, Walker

EXT = "http://example.org/fhir/StructureDefinition/sps-room"


def _run(elements: list[dict[str, Any]], resource: dict[str, Any]) -> list[Issue]:
    rtype = resource["resourceType"]
    sd = structure_definition("t", "T", "T", rtype, "test profile", elements)
    walker = Walker(compile_profile(sd), State(None))
    walker.check_resource(resource, rtype)
    return walker.issues


def _found(issues: list[Issue]) -> list[tuple[str, str | None]]:
    return [(i.code, i.expression) for i in issues]


def test_max_length() -> None:
    rule = [el("Patient.name.family", maxLength=5)]
    ok = {"resourceType": "Patient", "name": [{"family": "Curie"}]}
    assert _run(rule, ok) == []
    long = {"resourceType": "Patient", "name": [{"family": "Sklodowska"}]}
    assert _found(_run(rule, long)) == [("too-long", "Patient.name[0].family")]


def test_min_and_max_value() -> None:
    rules = [
        el("Patient.multipleBirth[x]", minValueInteger=1, maxValueInteger=9),
        el("Patient.birthDate", minValueDate="1900-01-01"),
    ]
    assert _run(rules, {"resourceType": "Patient", "multipleBirthInteger": 2}) == []
    issues = _run(rules, {"resourceType": "Patient", "multipleBirthInteger": 12})
    assert _found(issues) == [("value", "Patient.multipleBirthInteger")]
    assert "maxValue" in issues[0].diagnostics
    old = {"resourceType": "Patient", "birthDate": "1850-05-01"}
    assert _found(_run(rules, old)) == [("value", "Patient.birthDate")]


def test_exists_discriminator() -> None:
    rules = [
        el("Patient.identifier", slicing=slicing("exists", "period")),
        el("Patient.identifier:current", min=1, max="1"),
        el("Patient.identifier:current.period", max="0"),
        el("Patient.identifier:past", min=0),
        el("Patient.identifier:past.period", min=1),
    ]
    now = {"value": "1"}
    then = {"value": "0", "period": {"end": "2020"}}
    assert _run(rules, {"resourceType": "Patient", "identifier": [then, now]}) == []
    issues = _run(rules, {"resourceType": "Patient", "identifier": [then]})
    assert _found(issues) == [("required", "Patient.identifier")]
    assert "period absent" in issues[0].diagnostics


def test_extension_slice_by_url() -> None:
    ext_type = [{"code": "Extension", "profile": [EXT]}]
    rules = [
        el("Task.extension", slicing=slicing("value", "url")),
        el("Task.extension:room", min=1, max="1", type=ext_type),
    ]
    task = {"resourceType": "Task", "status": "ready", "intent": "plan"}
    room = {"url": EXT, "valueString": "R2"}
    other = {"url": "http://example.org/other", "valueString": "x"}
    assert _run(rules, {**task, "extension": [other, room]}) == []
    issues = _run(rules, {**task, "extension": [other]})
    assert _found(issues) == [("required", "Task.extension")]
    assert EXT in issues[0].diagnostics


def test_contained_references_resolve() -> None:
    rules = [
        el(
            "Task.requestedPerformer",
            slicing=slicing("profile", "reference.resolve()"),
        ),
        el(
            "Task.requestedPerformer:station",
            min=1,
            type=[
                {
                    "code": "CodeableReference",
                    "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Device"],
                }
            ],
        ),
    ]
    task = {
        "resourceType": "Task",
        "status": "ready",
        "intent": "plan",
        "contained": [{"resourceType": "Device", "id": "st1"}],
        "requestedPerformer": [{"reference": {"reference": "#st1"}}],
    }
    assert _run(rules, task) == []
    task["requestedPerformer"] = [{"reference": {"reference": "#nope"}}]
    found = _found(_run(rules, task))
    assert ("not-found", "Task.requestedPerformer[0].reference") in found


def test_value_set_filters_on_a_shipped_code_system() -> None:
    from fhirmwl.fhir.model import ID_TYPE_SYSTEM
    from fhirmwl.validation.terminology import _descendants, _filtered, _include_codes

    def include(op: str, value: str) -> Any:
        flt = {"property": "concept", "op": op, "value": value}
        return _include_codes({"system": ID_TYPE_SYSTEM, "filter": [flt]})

    assert include("is-a", "RPID") == {(ID_TYPE_SYSTEM, "RPID")}
    assert include("is-not-a", "RPID") == {(ID_TYPE_SYSTEM, "SPSID")}
    assert include("in", "RPID,SPSID,NOPE") == {(ID_TYPE_SYSTEM, "RPID"), (ID_TYPE_SYSTEM, "SPSID")}
    assert include("regex", ".*") is None  # not expandable here: the binding is a warning
    tree = _descendants([{"code": "A", "concept": [{"code": "B", "concept": [{"code": "C"}]}]}])
    flt = {"property": "concept", "op": "descendent-of", "value": "A"}
    assert _filtered(tree, flt) == {"B", "C"}
    assert _filtered(tree, dict(flt, op="is-a", value="B")) == {"B", "C"}
