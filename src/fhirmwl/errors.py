"""One exception tree for the whole broker.

Core code raises these; only the edges translate them into protocol errors (HTTP status +
OperationOutcome, an HL7 ACK with ERR, a DICOM C-FIND status). Each class carries the HTTP status
and the FHIR issue code it maps to, so the API layer needs no table of its own.
"""

from __future__ import annotations

from typing import Any


class FhirMwlError(Exception):
    """Base class. ``issues`` lets one error report several findings (e.g. validation)."""

    http_status = 500
    issue_code = "exception"

    def __init__(
        self,
        message: str,
        *,
        expression: str | None = None,
        issues: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.issues = issues


class BadRequest(FhirMwlError):
    http_status = 400
    issue_code = "invalid"


class NotSupported(FhirMwlError):
    http_status = 400
    issue_code = "not-supported"


class NotFound(FhirMwlError):
    http_status = 404
    issue_code = "not-found"


class MethodNotAllowed(FhirMwlError):
    http_status = 405
    issue_code = "not-supported"


class Conflict(FhirMwlError):
    http_status = 409
    issue_code = "conflict"


class BusinessRuleViolation(Conflict):
    issue_code = "business-rule"


class DuplicateIdentifier(Conflict):
    issue_code = "duplicate"


class WriteConflict(DuplicateIdentifier):
    """Concurrent writers waited on each other (a PostgreSQL deadlock or serialization failure):
    nothing was written and running the unit of work again, which re-reads, will succeed."""

    issue_code = "transient"


class Gone(FhirMwlError):
    http_status = 410
    issue_code = "deleted"


class PreconditionFailed(FhirMwlError):
    http_status = 412
    issue_code = "conflict"


class UnsupportedMediaType(FhirMwlError):
    http_status = 415
    issue_code = "not-supported"


class Unprocessable(FhirMwlError):
    http_status = 422
    issue_code = "processing"


class StoreError(FhirMwlError):
    """The database failed (connection lost, disk full): nothing was written."""

    http_status = 500
    issue_code = "exception"
