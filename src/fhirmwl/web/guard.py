"""Who may see and do what on the desk when authentication is on.

``DeskAuthMiddleware`` sits in front of every desk path (``/`` and ``/ui/…`` except the login
routes and the static files): without a valid session a page view is redirected (303) to
``/ui/login?next=…``; a live-update request, the event stream or a form post gets ``401``. With
a session the user (name, scopes) is put into the request for the pages and for the audit
trail (``auth_claims``, as the bearer door does).

``NEEDS`` is the table of docs/web.md: each page and action needs SMART permissions like the
FHIR interaction it stands for (an action needs what ``$update-order``/``$cancel-order`` need).
``user/`` and ``system/`` scopes count; ``patient/`` scopes do not (the desk shows many
patients). ``require`` raises 403 naming the first missing scope; the page shows it and nothing
changes. With authentication off there is no user and nothing is checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

from fhirmwl.security.access import Forbidden
from fhirmwl.security.scopes import Need, authorize
from fhirmwl.web.login import DeskLogin, DeskUser

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PUBLIC = ("/ui/login", "/ui/callback", "/ui/logout")
_UPDATE_ORDER = (Need("ServiceRequest", "u"), Need("Task", "u"))
# page or action → (what the user tries, the permissions it needs)
NEEDS: dict[str, tuple[str, tuple[Need, ...]]] = {
    "worklist": ("see the worklist", (Need("Task", "s"),)),
    "events": ("follow live updates", (Need("Task", "s"),)),
    "status": ("see the status page", (Need("Task", "s"),)),
    "find": ("find orders", (Need("ServiceRequest", "s"),)),
    "task": ("open an order", (Need("ServiceRequest", "r"), Need("Task", "r"))),
    "order": ("open an order", (Need("ServiceRequest", "r"), Need("Task", "r"))),
    "messages": ("search the HL7 message log", (Need("*", "s"),)),
    "message": ("read an HL7 message", (Need("*", "r"),)),
    "replay": ("replay an HL7 message", (Need("*", "c"), Need("*", "u"))),
    "subscriptions": ("see subscriptions", (Need("Subscription", "s"),)),
    "action:reschedule": ("reschedule a step", _UPDATE_ORDER),
    "action:station": ("change a step's station", _UPDATE_ORDER),
    "action:status": ("change a step's status", (Need("Task", "u"),)),
    "action:cancel": ("cancel an order", _UPDATE_ORDER),
}


def user_of(request: Request) -> DeskUser | None:
    state = request.scope.get("state")
    user = state.get("desk_user") if isinstance(state, dict) else None
    return user if isinstance(user, DeskUser) else None


def refusal(user: DeskUser, what: str) -> str | None:
    """Why ``user`` may not do ``what`` (a ``NEEDS`` key), or None when the scopes allow it."""
    label, needs = NEEDS[what]
    wide = [s for s in user.scopes if s.context != "patient"]
    decision = authorize(wide, needs)
    if decision.allowed:
        return None
    assert decision.missing is not None
    wanted = decision.missing.scope("user")
    return f"{user.name} may not {label}: the login lacks the scope {wanted}"


def require(request: Request, what: str) -> None:
    """Raise 403 unless the logged-in user's scopes allow ``what`` (a ``NEEDS`` key)."""
    user = user_of(request)
    reason = None if user is None else refusal(user, what)
    if reason is not None:
        raise Forbidden(reason)


def _protected(path: str) -> bool:
    if path == "/" or path == "/ui":
        return True
    return path.startswith("/ui/") and path not in PUBLIC and not path.startswith("/ui/static/")


class DeskAuthMiddleware:
    def __init__(self, app: Any, login: DeskLogin) -> None:
        self.app = app
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        user = await self.login.current(request)
        if user is not None:
            state = scope.setdefault("state", {})
            state["desk_user"] = user
            state["auth_claims"] = user.claims
            await self.app(scope, receive, send)
            return
        params = request.query_params
        page_view = (
            scope["method"] in ("GET", "HEAD")
            and scope["path"] != "/ui/events"
            and "partial" not in params
            and "fingerprint" not in params
        )
        if page_view:
            target = scope["path"] if scope["path"].startswith("/ui/") else "/ui/worklist"
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            response: Any = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
        else:
            response = PlainTextResponse("log in to the desk first (/ui/login)", 401)
        await response(scope, receive, send)
