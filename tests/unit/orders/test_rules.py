"""Pure rules: Task transitions, roll-up, catalogue parsing, identifiers, topic events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhirmwl.errors import BadRequest, BusinessRuleViolation
from fhirmwl.notify.delivery import Numbered, backoff, notification_bundle
from fhirmwl.notify.topics import (
    ORDER_CANCELLED,
    ORDER_CREATED,
    STEP_STATUS,
    Change,
    TopicRegistry,
    classify,
    matches,
)
from fhirmwl.services.orders import order_control_action, parse_catalogue
from fhirmwl.services.orders.context import default_uid_factory
from fhirmwl.services.orders.ids import format_accession, rp_id, sps_id
from fhirmwl.services.orders.status import check_transition, rolled_up


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("requested", "accepted"),
        ("accepted", "ready"),
        ("ready", "in-progress"),
        ("in-progress", "completed"),
        ("requested", "cancelled"),
        ("on-hold", "requested"),
        ("completed", "entered-in-error"),
        ("requested", "requested"),
    ],
)
def test_legal_transitions(old: str, new: str) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("requested", "completed"),
        ("completed", "in-progress"),
        ("cancelled", "requested"),
        ("entered-in-error", "requested"),
    ],
)
def test_illegal_transitions_name_the_allowed(old: str, new: str) -> None:
    with pytest.raises(BusinessRuleViolation) as err:
        check_transition(old, new)
    assert f"{old} cannot change to {new}" in err.value.message
    assert "allowed" in err.value.message


def test_roll_up() -> None:
    assert rolled_up(["completed", "completed"], "active") == "completed"
    assert rolled_up(["cancelled", "cancelled"], "active") == "revoked"
    assert rolled_up(["completed", "requested"], "active") == "active"
    assert rolled_up(["completed", "cancelled"], "revoked") == "revoked"
    assert rolled_up(["entered-in-error"], "active") == "active"


def test_order_control_table() -> None:
    created = order_control_action("NW", "")
    assert created is not None and created.action == "create"
    started = order_control_action("NW", "IP")
    assert started is not None and started.task_status == "in-progress"
    dc = order_control_action("DC", "CA")
    assert dc is not None and dc.action == "discontinue"
    assert order_control_action("ZZ", "") is None


def test_catalogue_parses_groups_and_rejects_bad_modality() -> None:
    cat = parse_catalogue(
        {
            "groups": {"ct": ["CT1", "CT2"]},
            "procedures": {
                "http://loinc.org|72254-7": {"modality": "CT", "group": "ct", "duration": 30}
            },
        }
    )
    proc = cat.lookup([{"system": "http://loinc.org", "code": "72254-7"}])
    assert proc is not None and proc.stations == ("CT1", "CT2") and proc.duration == 30
    assert cat.lookup([{"system": "http://other", "code": "72254-7"}]) is None
    with pytest.raises(BadRequest, match="not a DICOM modality"):
        parse_catalogue({"procedures": {"X": {"modality": "XX", "stations": ["A"]}}})
    with pytest.raises(BadRequest, match="group"):
        parse_catalogue({"procedures": {"X": {"modality": "CT", "group": "none"}}})


def test_identifiers() -> None:
    now = datetime(2024, 5, 6, tzinfo=UTC)
    assert format_accession("{now:%y%m%d}{seq:04d}", 7, now) == "2405060007"
    with pytest.raises(BadRequest):
        format_accession("{seq:020d}", 1, now)
    assert rp_id("A1", 2) == "A1.2" and sps_id("A1.2", 1) == "A1.2.1"
    uid = default_uid_factory("1.2.826.0.1.3680043.10.1")()
    assert uid.startswith("1.2.826.0.1.3680043.10.1.") and len(uid) <= 64
    assert default_uid_factory()().startswith("2.25.")


def _change(rtype: str, rid: str, cur: dict, prev: dict | None, isr: bool = False) -> Change:
    return Change(rtype, rid, 2, cur, prev, "isr1", isr)


def test_classify_events() -> None:
    created = classify(
        [_change("ServiceRequest", "isr1", {"status": "active"}, None, True)],
        {"isr1": {"modality": ["CT"]}},
    )
    assert [e.topic for e in created] == [ORDER_CREATED]
    cancel = classify(
        [
            _change("ServiceRequest", "isr1", {"status": "revoked"}, {"status": "active"}, True),
            _change("Task", "t1", {"status": "cancelled"}, {"status": "requested"}),
        ],
        {},
    )
    assert [e.topic for e in cancel] == [ORDER_CANCELLED, STEP_STATUS]
    step = classify([_change("Task", "t1", {"status": "in-progress"}, {"status": "ready"})], {})
    assert [e.topic for e in step] == [STEP_STATUS]


def test_filters_and_topics() -> None:
    assert matches([("station", "ct1,CT2")], {"station": ["CT2"]})
    assert not matches([("modality", "MR")], {"modality": ["CT"]})
    reg = TopicRegistry()
    assert reg.get("SubscriptionTopic", "order-created")["url"] == ORDER_CREATED
    assert len(reg.search("SubscriptionTopic", {})) == 4


def test_notification_payloads() -> None:
    sub = {"id": "s1", "status": "active", "topic": ORDER_CREATED, "content": "full-resource"}
    ev = Numbered(3, "2024-01-01T00:00:00Z", "ServiceRequest", "x", {"resourceType": "X"})
    bundle = notification_bundle(sub, "event-notification", 3, [ev], "http://b/fhir", "now")
    status = bundle["entry"][0]["resource"]
    assert status["notificationEvent"][0]["eventNumber"] == "3"
    assert bundle["entry"][1]["resource"] == {"resourceType": "X"}
    empty = notification_bundle(
        dict(sub, content="empty"), "event-notification", 3, [ev], "http://b/fhir", "now"
    )
    assert len(empty["entry"]) == 1
    assert backoff(1) < backoff(3) <= 60
