"""R5 ``subscription-notification`` Bundles (pure): handshake, heartbeat, event notifications.

Kept free of IO so the payload shapes (full-resource / id-only / empty) are unit-tested and the
dispatcher, ``$events`` and ``$status`` build the same Bundles.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class Numbered:
    """One event as a subscription sees it: its own event number, plus the focus."""

    number: int
    timestamp: str
    focus_type: str
    focus_id: str
    resource: dict[str, Any] | None  # focus content for full-resource


def subscription_status(
    sub: dict[str, Any],
    kind: str,
    since_start: int,
    events: list[Numbered],
    base: str,
    error: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "status": sub.get("status", "active"),
        "type": kind,
        "eventsSinceSubscriptionStart": str(since_start),
        "subscription": {"reference": f"{base}/Subscription/{sub.get('id')}"},
        "topic": sub.get("topic"),
    }
    if events and kind in ("event-notification", "query-event"):
        status["notificationEvent"] = [
            {
                "eventNumber": str(e.number),
                "timestamp": e.timestamp,
                "focus": {"reference": f"{base}/{e.focus_type}/{e.focus_id}"},
            }
            for e in events
        ]
    if error:
        status["error"] = [{"text": error}]
    return status


def notification_bundle(
    sub: dict[str, Any],
    kind: str,
    since_start: int,
    events: list[Numbered],
    base: str,
    now: str,
    error: str | None = None,
) -> dict[str, Any]:
    """A Bundle of type subscription-notification in the subscription's payload content."""
    content = sub.get("content", "id-only")
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": subscription_status(sub, kind, since_start, events, base, error),
        }
    ]
    if content != "empty":
        for e in events:
            url = f"{base}/{e.focus_type}/{e.focus_id}"
            if content == "full-resource" and e.resource is not None:
                entries.append({"fullUrl": url, "resource": e.resource})
            else:
                entries.append(
                    {
                        "fullUrl": url,
                        "request": {"method": "PUT", "url": f"{e.focus_type}/{e.focus_id}"},
                    }
                )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "subscription-notification",
        "timestamp": now,
        "entry": entries,
    }


def backoff(errors: int, cap: float = 60.0) -> float:
    """Seconds to wait before the next attempt after ``errors`` consecutive failures."""
    return min(cap, 0.25 * (2 ** max(errors - 1, 0)))


def headers_of(sub: dict[str, Any]) -> dict[str, str]:
    """Subscription.parameter name/value pairs become HTTP headers on a rest-hook."""
    out = {"Content-Type": sub.get("contentType") or "application/fhir+json"}
    for p in sub.get("parameter") or []:
        name, value = p.get("name"), p.get("value")
        if isinstance(name, str) and isinstance(value, str) and "\n" not in name + value:
            out[name] = value
    return out


def filters_of(sub: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(f.get("filterParameter")), str(f.get("value", "")))
        for f in sub.get("filterBy") or []
        if f.get("filterParameter")
    ]
