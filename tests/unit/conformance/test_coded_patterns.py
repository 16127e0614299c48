"""Coded patterns match on system + code (+ version): a RIS that leaves out the display text,
or words it differently, is not refused (docs/conformance.md, deviation "display")."""

from __future__ import annotations

from typing import Any

from tests.conftest import ig_examples

from fhirmwl.validation import validate, validate_bundle

SNOMED = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _bundle_with(index: int, change: Any) -> list[Any]:
    bundle = ig_examples()
    change(bundle["entry"][index]["resource"])
    return validate_bundle(bundle)


def _category(display: str | None) -> Any:
    coding = {"system": SNOMED, "code": "363679005"}
    if display is not None:
        coding["display"] = display
    return lambda isr: isr.update(category=[{"coding": [coding]}])


def _modality_type(display: str | None) -> Any:
    def change(task: dict[str, Any]) -> None:
        coding = task["input"][0]["type"]["coding"][0]
        coding.pop("display")
        if display is not None:
            coding["display"] = display

    return change


def test_missing_display_is_no_issue() -> None:
    assert _bundle_with(2, _category(None)) == []
    assert _bundle_with(6, _modality_type(None)) == []


def test_different_display_is_one_warning() -> None:
    issues = _bundle_with(2, _category("Imaging (procedure)"))
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("warning", "value", "Bundle.entry[2].resource.category[0]")
    ]
    assert "display" in issues[0].diagnostics
    issues = _bundle_with(6, _modality_type("modality"))
    assert [(i.severity, i.expression) for i in issues] == [
        ("warning", "Bundle.entry[6].resource.input[0].type")
    ]


def test_different_code_or_system_is_still_an_error() -> None:
    def other_code(isr: dict[str, Any]) -> None:
        isr["category"][0]["coding"][0]["code"] = "103693007"

    issues = _bundle_with(2, other_code)
    assert [(i.severity, i.expression) for i in issues] == [
        ("error", "Bundle.entry[2].resource.category[0]")
    ]

    def other_system(task: dict[str, Any]) -> None:
        task["input"][0]["type"]["coding"][0]["system"] = "http://loinc.org"

    issues = _bundle_with(6, other_system)
    assert any(i.is_error and "modality" in i.diagnostics for i in issues), issues


def test_task_alone_without_display() -> None:
    task = ig_examples()["entry"][6]["resource"]
    _modality_type(None)(task)
    assert [i for i in validate(task) if i.is_error] == []
