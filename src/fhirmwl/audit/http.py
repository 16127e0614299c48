"""The HTTP side of the audit trail: a middleware that audits every FHIR/DICOMweb request, and
the read-only ``/fhir/AuditEvent`` endpoints (search, read; any change → 405, itself audited).

The middleware opens the access context before the request reaches the API (so a committed
write records its event in its own transaction) and, when the answer is sent and nothing was
recorded, queues the event for reads, searches, operations without changes and refusals. The
patients of a read are taken from the JSON answer (resource ids of Patients and the Patient
references of the resources returned), at most the first 2 MB of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhirmwl.audit import events as ev
from fhirmwl.audit import store as audit_store
from fhirmwl.audit.recorder import CURRENT, AccessContext, AuditWriter
from fhirmwl.fhir.outcome import issue, outcome

if TYPE_CHECKING:
    from fhirmwl.services.container import Services

_SKIP = ("/healthz", "/readyz", "/metrics")
_MAX_CAPTURE = 2 << 20
_METHOD_ACTION = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}


def classify(method: str, path: str, query: str) -> tuple[str, ev.Code]:
    """(action, BALP subtype) of a REST request."""
    parts = [p for p in path.split("/") if p][1:]  # drop "fhir" / "dicomweb"
    if parts and parts[-1].startswith("$"):
        return "E", ev.interaction(parts[-1][1:][:40])
    if not parts:
        return ("E", ev.interaction("transaction")) if method == "POST" else ("R", ev.REST)
    if "_history" in parts:
        return "R", ev.interaction("history")
    if len(parts) == 1 or parts[-1] == "_search":
        code = {"GET": "search-type", "POST": "create", "PUT": "update", "DELETE": "delete"}
        action = "E" if method == "GET" or parts[-1] == "_search" else _METHOD_ACTION[method]
        return action, ev.interaction(code.get(method, "search-type"))
    code = {"GET": "read", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}
    return _METHOD_ACTION.get(method, "E"), ev.interaction(code.get(method, "read"))


def _patient_refs(node: Any, out: list[str], depth: int = 0) -> None:
    if depth > 6 or len(out) > 200:
        return
    if isinstance(node, dict):
        if node.get("resourceType") == "Patient" and node.get("id"):
            out.append(str(node["id"]))
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            out.append(ref.split("/")[1])
        for key, value in node.items():
            if key in ("subject", "for", "patient", "entry", "resource", "beneficiary"):
                _patient_refs(value, out, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _patient_refs(item, out, depth + 1)


def principal_of(scope: dict[str, Any]) -> tuple[str, str]:
    """(agent id, display) of the authenticated caller, as the auth layer left it in scope."""
    state = scope.get("state") or {}
    claims = state.get("auth_claims") if isinstance(state, dict) else None
    if not isinstance(claims, dict):
        return "anonymous", ""
    client = str(claims.get("client_id") or claims.get("azp") or "")
    subject = str(claims.get("sub") or "")
    issuer = str(claims.get("iss") or "")
    agent = client or subject or "anonymous"
    display = f"sub={subject}" if subject and subject != agent else ""
    return agent, f"{display} iss={issuer}".strip() if issuer else display


class AuditMiddleware:
    def __init__(self, app: Any, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path.startswith(_SKIP)
            or not path.startswith(("/fhir", "/dicomweb", "/ui"))
        ):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        query = scope.get("query_string", b"")
        action, code = classify(method, path, query.decode("latin-1"))
        client = scope.get("client") or ("", 0)
        ctx = AccessContext(
            door="http",
            action=action,
            code=code,
            agent_network=f"{client[0]}:{client[1]}",
            query=query or None,
            details={"method": method, "path": path[:512]},
            principal=lambda: principal_of(scope),
        )
        status = {"code": 500}
        body = bytearray()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            elif message["type"] == "http.response.body" and len(body) < _MAX_CAPTURE:
                body.extend(message.get("body", b""))
            await send(message)

        token = CURRENT.set(ctx)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            CURRENT.reset(token)
            ctx.resolve_agent()
            if not ctx.recorded:
                self._queue(ctx, status["code"], bytes(body))

    def _queue(self, ctx: AccessContext, code: int, body: bytes) -> None:
        if code in (401, 403):
            ctx.category = ev.USER_AUTHENTICATION if code == 401 else ev.ACCESS_CONTROL
        if 200 <= code < 300 and body[:1] == b"{":
            try:
                patients: list[str] = []
                _patient_refs(orjson.loads(body), patients)
                ctx.patients += patients
            except orjson.JSONDecodeError:
                pass
        result = (
            ev.SUCCESS if code < 400 else ev.MINOR_FAILURE if code < 500 else ev.SERIOUS_FAILURE
        )
        self.writer.submit(ctx.record(result, f"HTTP {code}"))


def _bundle(events: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": f"{base}/AuditEvent/{e['id']}", "resource": e, "search": {"mode": "match"}}
            for e in events
        ],
    }


def routes(services: Services) -> list[Route]:
    from fhirmwl.api import http

    base = services.settings.fhir_base

    def refuse(method: str) -> Response:
        ctx = CURRENT.get()
        if ctx is not None:
            ctx.category = ev.ACCESS_CONTROL
        text = f"AuditEvents are append-only: {method} is not allowed"
        return http.fhir_response(outcome(issue("error", "not-supported", text)), 405)

    async def type_level(request: Request) -> Response:
        if request.method != "GET":
            return refuse(request.method)
        params = list(request.query_params.multi_items())
        try:
            count = int(request.query_params.get("_count", "50"))
        except ValueError:
            count = -1
        if not 0 <= count <= 1000:
            msg = "_count must be an integer from 0 to 1000"
            return http.fhir_response(outcome(issue("error", "invalid", msg)), 400)

        def run() -> list[dict[str, Any]]:
            with services.store.read() as tx:
                return audit_store.search(tx.conn, params, count)

        try:
            found = await run_in_threadpool(run)
        except KeyError as exc:
            msg = f"unknown search parameter {exc.args[0]!r} for AuditEvent"
            return http.fhir_response(outcome(issue("error", "not-supported", msg)), 400)
        except ValueError as exc:
            return http.fhir_response(outcome(issue("error", "invalid", str(exc))), 400)
        return http.fhir_response(_bundle(found, base))

    async def instance(request: Request) -> Response:
        if request.method != "GET":
            return refuse(request.method)
        event_id = request.path_params["id"]

        def run() -> dict[str, Any] | None:
            with services.store.read() as tx:
                return audit_store.read(tx.conn, event_id)

        found = await run_in_threadpool(run)
        if found is None:
            msg = f"AuditEvent/{event_id} is not known"
            return http.fhir_response(outcome(issue("error", "not-found", msg)), 404)
        return http.fhir_response(found)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return [
        Route("/fhir/AuditEvent", type_level, methods=methods),
        Route("/fhir/AuditEvent/{id}", instance, methods=methods),
    ]
