"""The desk's HTTP routes: thin Starlette handlers that read a page model in a worker thread
(the store is synchronous), render it, and turn service errors into an error box on the page
with the error's own HTTP status. POST handlers check CSRF first and redirect (303) after a
successful action so a reload does not repeat it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from fhirmwl.errors import FhirMwlError, NotFound
from fhirmwl.ops.health import listener_checks
from fhirmwl.services.ingest_v2 import log as v2log
from fhirmwl.services.worklist.source import StoreWorklistSource
from fhirmwl.web import actions
from fhirmwl.web.admin_view import (
    MessageFilter,
    message_text,
    search_messages,
    status_view,
    subscriptions,
)
from fhirmwl.web.csrf import checked_form
from fhirmwl.web.feed import ChangeFeed
from fhirmwl.web.feedback_view import outbound_status
from fhirmwl.web.find import find_orders, known_stations
from fhirmwl.web.guard import NEEDS, require
from fhirmwl.web.order_view import load_order_view, order_fingerprint, order_of_task
from fhirmwl.web.render import fragment, page
from fhirmwl.web.worklist_view import (
    COLUMNS,
    PAGE_SIZES,
    SPS_STATUSES,
    WorklistFilter,
    worklist_page,
)

log = logging.getLogger("fhirmwl.web")
Handler = Callable[[Request], Awaitable[Response]]
DONE = {
    "rescheduled": "The step was rescheduled.",
    "station": "The step was moved to the new station.",
    "status": "The step status was changed.",
    "cancelled": "The order was cancelled.",
}


def _errors(title: str, needs: str | None = None) -> Callable[[Handler], Handler]:
    """Render service errors as an error page with the error's status; ``needs`` names the
    permissions (``guard.NEEDS``) the logged-in user must have for the page."""

    def wrap(fn: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                if needs is not None:
                    require(request, needs)
                return await fn(request)
            except FhirMwlError as err:
                return page(request, "error.html", err.http_status, title=title, error=err)
            except Exception:  # noqa: BLE001 - the page says so; the log has the trace
                log.exception("desk page %s failed", request.url.path)
                internal = FhirMwlError("internal error; see the server log")
                return page(request, "error.html", 500, title=title, error=internal)

        return handler

    return wrap


class Desk:
    def __init__(self, services: Any, feed: ChangeFeed) -> None:
        self.s = services
        self.feed = feed
        self.tz = ZoneInfo(services.settings.timezone)
        self.source = StoreWorklistSource(services.store, services.settings.worklist_retention_days)

    def _read(self, fn: Callable[[Any], Any]) -> Awaitable[Any]:
        def run() -> Any:
            with self.s.store.read() as tx:
                return fn(tx)

        return run_in_threadpool(run)

    def _write(self, fn: Callable[[Any], Any]) -> Awaitable[Any]:
        def run() -> Any:
            with self.s.store.write() as tx:
                return fn(tx)

        return run_in_threadpool(run)

    # ---- worklist ------------------------------------------------------------------------
    async def worklist(self, request: Request) -> Response:
        try:
            flt = WorklistFilter.from_params(request.query_params, datetime.now(self.tz).date())
        except FhirMwlError as err:
            flt = WorklistFilter()
            return page(request, "worklist.html", 400, **self._wl_context(flt, None), error=err)
        cursor = await run_in_threadpool(self.feed.read_cursor)  # before the query: no gap
        result = await run_in_threadpool(worklist_page, self.source, flt)
        context = {**self._wl_context(flt, result), "cursor": cursor}
        if request.query_params.get("partial") == "1":
            return HTMLResponse(
                fragment("worklist_table.html", **context), headers={"Cache-Control": "no-store"}
            )
        stations = await self._read(known_stations)
        return page(request, "worklist.html", **context, stations=stations)

    def _wl_context(self, flt: WorklistFilter, result: Any) -> dict[str, Any]:
        return {
            "title": "Worklist",
            "nav": "worklist",
            "f": flt,
            "params": flt.params(),
            "result": result,
            "columns": COLUMNS,
            "sizes": PAGE_SIZES,
            "statuses": SPS_STATUSES,
            "cursor": self.feed.cursor,
            "timezone": self.s.settings.timezone,
        }

    # ---- order ---------------------------------------------------------------------------
    async def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]

        def find(tx: Any) -> str | None:
            stored = tx.read("Task", task_id)
            if stored is None or stored.deleted:
                raise NotFound(f"Task/{task_id} is not known")
            return order_of_task(tx, stored.resource())

        isr_id = await self._read(find)
        if isr_id is None:
            raise NotFound(f"Task/{task_id} belongs to no order")
        return RedirectResponse(f"/ui/order/{isr_id}#task-{task_id}", 303)

    async def order(self, request: Request, error: FhirMwlError | None = None) -> Response:
        isr_id = request.path_params["isr_id"]
        if request.method == "GET" and request.query_params.get("fingerprint") == "1":
            text = await run_in_threadpool(order_fingerprint, self.s, isr_id)
            return PlainTextResponse(text, headers={"Cache-Control": "no-store"})
        view = await run_in_threadpool(load_order_view, self.s, isr_id)
        stations = await self._read(known_stations)
        done = DONE.get(request.query_params.get("done", ""))
        return page(
            request,
            "order.html",
            error.http_status if error else 200,
            title=f"Order {view.accession or isr_id}",
            nav="worklist",
            o=view,
            done=done,
            error=error,
            statuses=actions.TASK_STATUSES,
            stations=stations,
            timezone=self.s.settings.timezone,
        )

    async def action(self, request: Request) -> Response:
        form = await checked_form(request)
        isr_id = request.path_params["isr_id"]
        name = request.path_params["action"]
        ctx = self.s.orders()
        task_id = form.get("task", "")

        def run(tx: Any) -> None:
            if name == "cancel":
                actions.cancel(tx, ctx, isr_id, form.get("reason", ""))
            elif name == "reschedule":
                actions.reschedule(tx, ctx, task_id, form.get("start", ""), self.tz)
            elif name == "station":
                actions.change_station(tx, ctx, task_id, form.get("station", ""))
            elif name == "status":
                actions.change_status(tx, ctx, task_id, form.get("status", ""))
            else:
                raise NotFound(f"no desk action {name!r}")

        try:
            if f"action:{name}" in NEEDS:
                require(request, f"action:{name}")  # before anything runs: nothing changes
            await self._write(run)
        except FhirMwlError as err:
            return await self.order(request, err)
        done = {"cancel": "cancelled", "reschedule": "rescheduled"}.get(name, name)
        anchor = f"#task-{task_id}" if task_id else ""
        return RedirectResponse(f"/ui/order/{isr_id}?done={done}{anchor}", 303)

    async def find(self, request: Request) -> Response:
        number = request.query_params.get("q", "").strip()
        found = await self._read(lambda tx: find_orders(tx, number)) if number else []
        if len(found) == 1:
            return RedirectResponse(f"/ui/order/{found[0].isr_id}", 303)
        return page(request, "find.html", title="Find an order", nav="", q=number, found=found)

    # ---- messages ------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        flt = MessageFilter.from_params(request.query_params)
        rows = await self._read(lambda tx: search_messages(tx, flt, self.tz))
        return page(
            request,
            "messages.html",
            title="HL7 messages",
            nav="messages",
            f=flt,
            params=flt.params(),
            rows=rows,
            statuses=v2log.STATUSES,
        )

    async def message(
        self, request: Request, ack: bytes | None = None, error: FhirMwlError | None = None
    ) -> Response:
        log_id = int(request.path_params["log_id"])
        rec = await self._read(lambda tx: v2log.get(tx.conn, log_id))
        if rec is None:
            raise NotFound(f"no message {log_id} in the log")
        return page(
            request,
            "message.html",
            error.http_status if error else 200,
            error=error,
            title=f"HL7 message {log_id}",
            nav="messages",
            m=rec,
            raw=message_text(rec.raw),
            ack=message_text(rec.ack),
            replay_ack=message_text(ack) if ack is not None else None,
        )

    async def replay(self, request: Request) -> Response:
        await checked_form(request)
        log_id = int(request.path_params["log_id"])
        try:
            require(request, "replay")
        except FhirMwlError as err:
            return await self.message(request, error=err)
        rec = await self._read(lambda tx: v2log.get(tx.conn, log_id))
        if rec is None:
            raise NotFound(f"no message {log_id} in the log")
        from fhirmwl.services.ingest_v2 import ingest

        ack = await run_in_threadpool(ingest, self.s, rec.raw)
        return await self.message(request, ack)

    # ---- subscriptions and status --------------------------------------------------------
    async def subscriptions(self, request: Request) -> Response:
        rows, head = await self._read(subscriptions)
        return page(
            request, "subscriptions.html", title="Subscriptions", nav="subscriptions",
            rows=rows, head=head,
        )  # fmt: skip

    async def status(self, request: Request) -> Response:
        measured = await run_in_threadpool(listener_checks, self.s)
        view, out = await self._read(
            lambda tx: (status_view(tx, self.s.settings, measured), outbound_status(tx))
        )
        return page(request, "status.html", title="Status", nav="status", v=view, outbound=out)

    def handlers(self) -> dict[str, Handler]:
        return {
            "worklist": _errors("Worklist", "worklist")(self.worklist),
            "task": _errors("Order", "task")(self.task),
            "order": _errors("Order", "order")(self.order),
            "find": _errors("Find an order", "find")(self.find),
            "action": _errors("Order", "order")(self.action),
            "messages": _errors("HL7 messages", "messages")(self.messages),
            "message": _errors("HL7 message", "message")(self.message),
            "replay": _errors("HL7 message", "message")(self.replay),
            "subscriptions": _errors("Subscriptions", "subscriptions")(self.subscriptions),
            "status": _errors("Status", "status")(self.status),
        }
