"""What a C-FIND answered, counted as the answers pass: the metrics and the audit trail both
wrap the SCP's C-FIND handler and need the same two figures, items returned and final status.

Items the SCP sends directly in bursts (``dicom.pending``) never pass the wrapper; the SCP
leaves their count on the event as ``fhirmwl_items``, which ``items`` prefers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PENDING_STATUSES = (0xFF00, 0xFF01)


class FindTally:
    def __init__(self) -> None:
        self.passed = 0
        self.final = "0000"

    def count(self, answers: Iterator[Any]) -> Iterator[Any]:
        """Pass ``(status, identifier)`` pairs through, counting Pending items."""
        for status, identifier in answers:
            code = int(getattr(status, "Status", status))
            if code in PENDING_STATUSES:
                self.passed += 1
            else:
                self.final = f"{code:04X}"
            yield status, identifier

    def items(self, event: Any) -> int:
        return int(getattr(event, "fhirmwl_items", self.passed))
