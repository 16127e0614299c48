"""The four SubscriptionTopics and how a committed change becomes topic events (pure).

RAD-3 (status to the Order Placer) and RAD-4/RAD-13 (procedure scheduled/updated to the Image
Manager) become FHIR R5 topic-based notifications. ``classify`` turns the resources one unit of
work touched (current and previous versions) into events; it does no IO so it is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirmwl.fhir.model import CANON

TOPIC_BASE = f"{CANON}/SubscriptionTopic"
ORDER_CREATED = f"{TOPIC_BASE}/order-created"
ORDER_UPDATED = f"{TOPIC_BASE}/order-updated"
ORDER_CANCELLED = f"{TOPIC_BASE}/order-cancelled"
STEP_STATUS = f"{TOPIC_BASE}/step-status-changed"

_FILTERS = [
    ("station", "AE title of a Scheduled Station of the order's steps (ScheduledStationAETitle)"),
    ("modality", "Modality of one of the order's steps (DICOM CID 33 code, e.g. CT)"),
]

_TOPICS = [
    (
        "order-created",
        ORDER_CREATED,
        "Order created and scheduled",
        "A new imaging order with its Requested Procedures and Scheduled Procedure Steps "
        "(RAD-4 Procedure Scheduled).",
        "ServiceRequest",
    ),
    (
        "order-updated",
        ORDER_UPDATED,
        "Order updated",
        "An order's data or schedule changed (RAD-13 Procedure Updated, XO).",
        "ServiceRequest",
    ),
    (
        "order-cancelled",
        ORDER_CANCELLED,
        "Order cancelled",
        "An order was cancelled or discontinued (RAD-13 CA/DC, RAD-3 OC).",
        "ServiceRequest",
    ),
    (
        "step-status-changed",
        STEP_STATUS,
        "Scheduled Procedure Step status changed",
        "A Task (Scheduled Procedure Step) changed status (RAD-3 Order Status Update).",
        "Task",
    ),
]


def topic_resource(
    tid: str, url: str, title: str, description: str, resource: str
) -> dict[str, Any]:
    return {
        "resourceType": "SubscriptionTopic",
        "id": tid,
        "url": url,
        "version": "0.1.0",
        "name": "".join(p.title() for p in tid.split("-")),
        "title": title,
        "status": "active",
        "experimental": True,
        "description": description,
        "resourceTrigger": [
            {
                "description": description,
                "resource": resource,
                "supportedInteraction": ["create", "update"],
            }
        ],
        "canFilterBy": [
            {"description": doc, "resource": resource, "filterParameter": name}
            for name, doc in _FILTERS
        ],
        "notificationShape": [
            {
                "resource": resource,
                "include": [f"{resource}:based-on"] if resource == "Task" else [],
            }
        ],
    }


TOPICS: dict[str, dict[str, Any]] = {t[0]: topic_resource(*t) for t in _TOPICS}
TOPIC_URLS = frozenset(t["url"] for t in TOPICS.values())
FILTER_NAMES = frozenset(name for name, _ in _FILTERS)


class TopicRegistry:
    """Read-only SubscriptionTopic resources, in the shape ``api.app`` serves read/search from."""

    search_param_names = ("url", "_id", "status", "title")

    def get(self, rtype: str, res_id: str) -> dict[str, Any] | None:
        return TOPICS.get(res_id) if rtype == "SubscriptionTopic" else None

    def search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        out = list(TOPICS.values()) if rtype == "SubscriptionTopic" else []
        for key, value in params.items():
            if key not in self.search_param_names:
                raise KeyError(key)
            field_name = "id" if key == "_id" else key
            out = [t for t in out if str(t.get(field_name)) == value]
        return out


@dataclass
class Event:
    topic: str
    order_id: str  # the ImagingServiceRequest id: the unit of ordering
    focus_type: str
    focus_id: str
    focus_version: int
    context: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Change:
    """One touched resource: its type/id, current version and previous content."""

    res_type: str
    res_id: str
    version: int
    current: dict[str, Any] | None
    previous: dict[str, Any] | None
    order_id: str | None  # ISR id it belongs to (None: not part of an order)
    is_isr: bool = False


def _same_but_status(a: dict[str, Any], b: dict[str, Any]) -> bool:
    skip = ("meta", "status", "statusReason", "businessStatus", "lastModified")
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


def classify(changes: list[Change], context: dict[str, dict[str, list[str]]]) -> list[Event]:
    """Events for one unit of work: at most one order event per order, plus step events."""
    events: list[Event] = []
    per_order: dict[str, tuple[str, Change]] = {}
    rank = {ORDER_CREATED: 3, ORDER_CANCELLED: 2, ORDER_UPDATED: 1}
    for ch in changes:
        if ch.order_id is None or ch.current is None:
            continue
        ctx = context.get(ch.order_id, {})
        if (
            ch.res_type == "Task"
            and ch.previous is not None
            and ch.previous.get("status") != ch.current.get("status")
        ):
            events.append(Event(STEP_STATUS, ch.order_id, "Task", ch.res_id, ch.version, ctx))
            if _same_but_status(ch.previous, ch.current):
                continue  # a pure status change is a step event, not an order update
        if ch.is_isr and ch.previous is None:
            topic = ORDER_CREATED
        elif (
            ch.is_isr
            and ch.current.get("status") == "revoked"
            and (ch.previous or {}).get("status") != "revoked"
        ):
            topic = ORDER_CANCELLED
        else:
            topic = ORDER_UPDATED
        best = per_order.get(ch.order_id)
        if best is None or rank[topic] > rank[best[0]]:
            per_order[ch.order_id] = (topic, ch)
    for order_id, (topic, _) in per_order.items():
        events.insert(
            0, Event(topic, order_id, "ServiceRequest", order_id, 0, context.get(order_id, {}))
        )
    return events


def matches(filters: list[tuple[str, str]], context: dict[str, list[str]]) -> bool:
    """Subscription.filterBy (all must hold; a value may list alternatives with commas)."""
    for name, value in filters:
        wanted = {v.strip().upper() for v in value.split(",") if v.strip()}
        have = {v.upper() for v in context.get(name, [])}
        if not wanted & have:
            return False
    return True
