"""HL7 v2 intake errors that carry what an ACK needs: MSA-1, the table 0357 code and the location.

The mapping and the parser raise these; only the edge (the MLLP listener, the CLI) turns them
into an ACK with an ERR segment (see `fhirmwl.hl7v2.ack`). They derive from the broker's one
exception tree so that the service layer can treat them like every other bad request.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirmwl.errors import BadRequest, NotSupported

# HL7 table 0357 (message error condition codes) used by the broker.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY_IDENTIFIER = "205"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"

ERROR_TEXT = {
    "0": "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_RECORD_LOCKED: "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class ErrorLocation:
    """ERR-2 (ERL): segment id, segment sequence (1-based), field, repetition, component."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    def __str__(self) -> str:
        text = f"{self.segment}-{self.field}" if self.field else self.segment
        if self.component:
            text += f".{self.component}"
        return text


class V2Error(BadRequest):
    """A message the broker cannot apply; ``ack_code`` is MSA-1 (AE or AR)."""

    ack_code = "AE"

    def __init__(self, hl7_code: str, message: str, location: ErrorLocation | None = None) -> None:
        super().__init__(message, expression=str(location) if location else None)
        self.hl7_code = hl7_code
        self.location = location


class V2Reject(V2Error):
    """The message is rejected outright (MSA-1 AR): unparseable or of an unsupported type."""

    ack_code = "AR"


class V2Unsupported(V2Reject, NotSupported):
    """Message type or trigger event the broker does not process (table 0357 code 200/201)."""
