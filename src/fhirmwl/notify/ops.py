"""``Subscription/{id}/$status`` and ``$events``, and the checks a new Subscription must pass."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fhirmwl.errors import BadRequest, NotFound
from fhirmwl.fhir.outcome import issue
from fhirmwl.notify.delivery import Numbered, notification_bundle, subscription_status
from fhirmwl.notify.dispatcher import focus_resource
from fhirmwl.notify.topics import FILTER_NAMES, TOPIC_URLS
from fhirmwl.services.container import Services
from fhirmwl.store import Tx

CONTENTS = ("empty", "id-only", "full-resource")


def subscription_validator(tx: Tx, rtype: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    """Refuse Subscriptions this server cannot honour (unknown topic, channel, filter)."""
    if rtype != "Subscription":
        return []
    found = []
    if res.get("topic") not in TOPIC_URLS:
        found.append(
            issue(
                "error",
                "not-supported",
                f"Subscription.topic {res.get('topic')!r} "
                f"is not one of {', '.join(sorted(TOPIC_URLS))}",
                "Subscription.topic",
            )
        )
    if (res.get("channelType") or {}).get("code") != "rest-hook":
        found.append(
            issue(
                "error",
                "not-supported",
                "only the rest-hook channel is supported",
                "Subscription.channelType",
            )
        )
    endpoint = str(res.get("endpoint") or "")
    if not endpoint.startswith(("http://", "https://")):
        found.append(
            issue(
                "error",
                "value",
                "Subscription.endpoint must be an http(s) URL",
                "Subscription.endpoint",
            )
        )
    if res.get("content", "id-only") not in CONTENTS:
        found.append(
            issue(
                "error",
                "value",
                f"Subscription.content must be one of {CONTENTS}",
                "Subscription.content",
            )
        )
    for f in res.get("filterBy") or []:
        if f.get("filterParameter") not in FILTER_NAMES:
            found.append(
                issue(
                    "error",
                    "not-supported",
                    f"filterParameter "
                    f"{f.get('filterParameter')!r} is not one of "
                    f"{sorted(FILTER_NAMES)}",
                    "Subscription.filterBy",
                )
            )
    return found


def _state(tx: Tx, sub_id: str) -> tuple[dict[str, Any], Any]:
    stored = tx.read("Subscription", sub_id)
    if stored is None or stored.content is None:
        raise NotFound(f"Subscription/{sub_id} is not known")
    row = tx.conn.execute(
        "SELECT events_count, error_count, last_error FROM notify_sub WHERE sub_id = ?", (sub_id,)
    ).fetchone()
    return stored.resource(), row or (0, 0, None)


async def status_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> dict[str, Any]:
    base = services.settings.fhir_base

    def run() -> dict[str, Any]:
        with services.store.read() as tx:
            sub, (count, errors, last_error) = _state(tx, str(res_id))
        status = subscription_status(
            sub,
            "query-status",
            count,
            [],
            base,
            f"{errors} failed attempt(s); last: {last_error}" if errors else None,
        )
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [{"resource": status, "search": {"mode": "match"}}],
        }

    return await run_in_threadpool(run)


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(value)


async def events_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> dict[str, Any]:
    base = services.settings.fhir_base
    since, until = _int(request, "eventsSinceNumber") or 1, _int(request, "eventsUntilNumber")
    content = request.query_params.get("content")

    def run() -> dict[str, Any]:
        with services.store.read() as tx:
            sub, (count, _, _) = _state(tx, str(res_id))
            rows = tx.conn.execute(
                "SELECT d.event_number, e.created, e.focus_type, e.focus_id, e.focus_version "
                "FROM notify_delivery d JOIN notify_event e ON e.event_no = d.event_no "
                "WHERE d.sub_id = ? AND d.event_number >= ? AND d.event_number <= ? "
                "ORDER BY d.event_number LIMIT 1000",
                (res_id, since, until if until is not None else count),
            ).fetchall()
            events = [
                Numbered(r[0], r[1], r[2], r[3], focus_resource(tx, r[2], r[3], r[4])) for r in rows
            ]
        shaped = (
            dict(sub, content=content) if content in ("empty", "id-only", "full-resource") else sub
        )
        return notification_bundle(
            shaped, "query-event", count, events, base, services.store.clock()
        )

    return await run_in_threadpool(run)
