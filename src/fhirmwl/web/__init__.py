"""The web desk: worklist, order, HL7 message, subscription and status pages at ``/ui/``.

Server-rendered HTML (Jinja2 templates in ``templates/``) with a little plain JavaScript
(``static/desk.js``: live updates over Server-Sent Events, keyboard shortcuts); no build step,
no CDN, every asset ships in the wheel. ``install`` registers the live-update feed as a listener
of ``serve`` (so SSE streams end before the HTTP server stops); ``routes`` returns the routes
``api.app.create_app`` mounts. Docs: docs/web.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fhirmwl.web.feed import ChangeFeed, events_endpoint

STATIC = Path(__file__).parent / "static"


def install(services: Any) -> ChangeFeed:
    feed = ChangeFeed(services.store)
    services.web_feed = feed
    services.listener_factories.append(("web", lambda s: feed))
    return feed


def _redirect(target: str) -> Any:
    async def go(request: Any) -> RedirectResponse:
        return RedirectResponse(target, 307)

    return go


def routes(services: Any) -> list[BaseRoute]:
    """The desk's routes (empty when ``web = false``)."""
    if not getattr(services.settings, "web", True):
        return []
    from fhirmwl.web.pages import Desk

    feed = services.web_feed or install(services)
    h = Desk(services, feed).handlers()
    return [
        Route("/", _redirect("/ui/")),
        Route("/ui", _redirect("/ui/worklist")),
        Route("/ui/", _redirect("/ui/worklist")),
        Route("/ui/worklist", h["worklist"]),
        Route("/ui/events", events_endpoint(feed)),
        Route("/ui/task/{task_id}", h["task"]),
        Route("/ui/find", h["find"]),
        Route("/ui/order/{isr_id}", h["order"]),
        Route("/ui/order/{isr_id}/{action}", h["action"], methods=["POST"]),
        Route("/ui/messages", h["messages"]),
        Route("/ui/messages/{log_id:int}", h["message"]),
        Route("/ui/messages/{log_id:int}/replay", h["replay"], methods=["POST"]),
        Route("/ui/subscriptions", h["subscriptions"]),
        Route("/ui/status", h["status"]),
        Mount("/ui/static", StaticFiles(directory=STATIC), name="desk-static"),
    ]
