"""The Change Workitem State table (PS3.4 CC.1.1) as a pure function."""

from __future__ import annotations

import pytest

from fhirmwl.ups.state import INCONSISTENT, MISSING_UID, WRONG_UID, decide, ups_state


@pytest.mark.parametrize(
    ("current", "requested", "held", "given", "expected"),
    [
        ("SCHEDULED", "IN PROGRESS", None, "1.2", (200, "in-progress", None, True)),
        ("SCHEDULED", "IN PROGRESS", None, "", (400, None, MISSING_UID, False)),
        ("SCHEDULED", "COMPLETED", None, "1.2", (409, None, INCONSISTENT, False)),
        ("SCHEDULED", "SCHEDULED", None, "1.2", (400, None, "x", False)),
        ("IN PROGRESS", "IN PROGRESS", "1.2", "1.3", (409, None, INCONSISTENT, False)),
        ("IN PROGRESS", "COMPLETED", "1.2", "1.3", (409, None, WRONG_UID, False)),
        ("IN PROGRESS", "COMPLETED", "1.2", "1.2", (200, "completed", None, False)),
        ("IN PROGRESS", "CANCELED", "1.2", "1.2", (200, "cancelled", None, False)),
        ("COMPLETED", "COMPLETED", "1.2", "1.2", (200, None, "already", False)),
        ("COMPLETED", "CANCELED", "1.2", "1.2", (409, None, INCONSISTENT, False)),
        ("CANCELED", "CANCELED", None, "1.2", (200, None, "already", False)),
    ],
)
def test_decide(
    current: str, requested: str, held: str | None, given: str, expected: tuple[object, ...]
) -> None:
    d = decide(current, requested, held, given)
    status, task, warning, claim = expected
    assert (d.http_status, d.task_status, d.claim) == (status, task, claim)
    if warning is None:
        assert d.warning is None
    else:
        assert d.warning is not None and (warning == "x" or str(warning) in d.warning)


def test_ups_state_of_task_status() -> None:
    assert [
        ups_state(s) for s in ("requested", "on-hold", "in-progress", "completed", "failed")
    ] == [
        "SCHEDULED",
        "SCHEDULED",
        "IN PROGRESS",
        "COMPLETED",
        "CANCELED",
    ]
