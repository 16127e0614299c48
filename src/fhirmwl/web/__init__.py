"""The web desk: worklist, order, HL7 message, subscription and status pages at ``/ui/``.

Server-rendered HTML (Jinja2 templates in ``templates/``) with a little plain JavaScript
(``static/desk.js``: live updates over Server-Sent Events, keyboard shortcuts); no build step,
no CDN, every asset ships in the wheel. ``install`` registers the live-update feed as a listener
of ``serve`` (so SSE streams end before the HTTP server stops) and the session table;
``routes`` returns the routes ``api.app.create_app`` mounts and ``auth_middleware`` the login
door in front of them when authentication is on (``login``, ``guard``). Docs: docs/web.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fhirmwl.web.feed import ChangeFeed, events_endpoint

STATIC = Path(__file__).parent / "static"


def install(services: Any) -> ChangeFeed:
    from fhirmwl.web import session

    session.register_migration()
    feed = ChangeFeed(services.store)
    services.web_feed = feed
    services.listener_factories.append(("web", lambda s: feed))
    return feed


def _redirect(target: str) -> Any:
    async def go(request: Any) -> RedirectResponse:
        return RedirectResponse(target, 307)

    return go


def _login(services: Any) -> Any:
    """The desk's OAuth client, when authentication is on and the desk is served."""
    if services.auth is None or not getattr(services.settings, "web", True):
        return None
    if services.desk_login is None:
        from fhirmwl.web.login import DeskLogin

        services.desk_login = DeskLogin(services)
    return services.desk_login


def auth_middleware(services: Any) -> list[Middleware]:
    login = _login(services)
    if login is None:
        return []
    from fhirmwl.web.guard import DeskAuthMiddleware

    return [Middleware(DeskAuthMiddleware, login=login)]


def _guarded_events(feed: ChangeFeed) -> Any:
    from fhirmwl.security.access import Forbidden
    from fhirmwl.web.guard import require, user_of

    def until(request: Request) -> float | None:
        user = user_of(request)
        return None if user is None else float(user.exp)

    stream = events_endpoint(feed, until=until)

    async def events(request: Request) -> Response:
        try:
            require(request, "events")
        except Forbidden as err:
            return PlainTextResponse(err.message, 403)
        return await stream(request)

    return events


def routes(services: Any) -> list[BaseRoute]:
    """The desk's routes (empty when ``web = false``)."""
    if not getattr(services.settings, "web", True):
        return []
    from fhirmwl.web.pages import Desk

    feed = services.web_feed or install(services)
    h = Desk(services, feed).handlers()
    login = _login(services)
    logins = [] if login is None else [
        Route("/ui/login", login.login),
        Route("/ui/callback", login.callback),
        Route("/ui/logout", login.logout, methods=["POST"]),
    ]  # fmt: skip
    return [
        *logins,
        Route("/", _redirect("/ui/")),
        Route("/ui", _redirect("/ui/worklist")),
        Route("/ui/", _redirect("/ui/worklist")),
        Route("/ui/worklist", h["worklist"]),
        Route("/ui/events", _guarded_events(feed)),
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
