"""OperationOutcome builders: the one shape every error and warning takes on the FHIR side."""

from __future__ import annotations

from typing import Any

from fhirmwl.errors import FhirMwlError


def issue(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        item["expression"] = [expression]
    return item


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def from_error(err: FhirMwlError) -> dict[str, Any]:
    if err.issues:
        return outcome(*err.issues)
    return outcome(issue("error", err.issue_code, err.message, err.expression))


def information(message: str) -> dict[str, Any]:
    return outcome(issue("information", "informational", message))
