"""Validation findings and their OperationOutcome form.

An :class:`Issue` is what every check produces; ``to_operation_outcome`` is the only place
that knows the OperationOutcome shape, so the API, ``$validate`` and the CLI report alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


@dataclass(frozen=True)
class Issue:
    """One finding: FHIR IssueSeverity, IssueType code, readable text, FHIRPath expression."""

    severity: str
    code: str
    diagnostics: str
    expression: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity in ("fatal", "error")

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = [self.expression]
        return out


def has_errors(issues: list[Issue]) -> bool:
    return any(issue.is_error for issue in issues)


def sort_issues(issues: list[Issue]) -> list[Issue]:
    """Errors first, then by expression, keeping the discovery order otherwise."""
    return sorted(issues, key=lambda i: (SEVERITY_ORDER.get(i.severity, 9), i.expression or ""))


def to_operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome; a clean result carries one ``information`` issue (issue is 1..*)."""
    if not issues:
        ok = Issue("information", "informational", "Validation successful: no issues found")
        return {"resourceType": "OperationOutcome", "issue": [ok.to_fhir()]}
    return {
        "resourceType": "OperationOutcome",
        "issue": [issue.to_fhir() for issue in sort_issues(issues)],
    }
