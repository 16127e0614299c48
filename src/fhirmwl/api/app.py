"""The FHIR REST API as a thin Starlette adapter over the service layer.

Routes only parse HTTP (path, headers, body), call a service inside one unit of work in a worker
thread (the store is synchronous), and format the answer. Every error leaves as an
OperationOutcome with the status its exception class carries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhirmwl import security
from fhirmwl.api import formats, http
from fhirmwl.api.capability import capability_statement, served_types
from fhirmwl.errors import BadRequest, FhirMwlError, MethodNotAllowed, NotFound, StoreError
from fhirmwl.fhir.outcome import from_error, issue, outcome
from fhirmwl.services.bundles import parse_if_match
from fhirmwl.services.container import Services
from fhirmwl.services.resources import WriteResult, check_type
from fhirmwl.services.search import history_bundle, search_bundle, shape

log = logging.getLogger("fhirmwl.api")


class FhirApi:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.base = services.settings.fhir_base

    # ---- dispatch ----------------------------------------------------------------------
    async def dispatch(self, request: Request) -> Response:
        try:
            fmt = formats.negotiate(request)
        except FhirMwlError as err:
            return http.fhir_response(from_error(err), err.http_status)
        try:
            return formats.render(await self._answer(request), fmt)
        except FhirMwlError as err:
            return http.fhir_response(from_error(err), err.http_status)

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except StoreError as err:
            # The database's own text (SQL, paths, constraint names) stays in the server log.
            log.error("store failure on %s %s: %s", request.method, request.url.path, err)
            return http.fhir_response(
                outcome(issue("error", "exception", "the database failed; nothing was changed")),
                err.http_status,
            )
        except FhirMwlError as err:
            return http.fhir_response(from_error(err), err.http_status)
        except Exception:  # noqa: BLE001 - the edge turns anything else into a 500 outcome
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return http.fhir_response(
                outcome(issue("fatal", "exception", "internal server error; see the server log")),
                500,
            )

    async def _dispatch(self, request: Request) -> Response:
        parts = [p for p in request.path_params.get("path", "").split("/") if p]
        method = request.method
        if not parts:
            if method == "POST":
                return await self.bundle(request)
            raise MethodNotAllowed(f"{method} is not allowed on the base URL")
        if parts[-1].startswith("$"):
            return await self.operation(request, parts)
        if parts == ["metadata"]:
            self._only(method, "GET")
            return http.fhir_response(capability_statement(self.s))
        if parts == ["_history"]:
            self._only(method, "GET")
            return await self.history(request, None, None)
        rtype = parts[0]
        served = served_types(self.s)  # the registry /metadata is generated from
        if rtype not in served:
            check_type(rtype)  # 404 naming the type
        readonly = served[rtype]
        if readonly is not None:
            return self.readonly(request, readonly, rtype, parts)
        if len(parts) == 1:
            return await self.type_level(request, rtype)
        if len(parts) == 2 and parts[1] == "_search":
            self._only(method, "POST")
            params = list(request.query_params.multi_items()) + await http.form_params(request)
            return await self.search(request, rtype, params)
        if len(parts) == 2 and parts[1] == "_history":
            self._only(method, "GET")
            return await self.history(request, rtype, None)
        if len(parts) == 2:
            return await self.instance(request, rtype, parts[1])
        if len(parts) == 3 and parts[2] == "_history":
            self._only(method, "GET")
            return await self.history(request, rtype, parts[1])
        if len(parts) == 4 and parts[2] == "_history":
            self._only(method, "GET")
            stored = await self._read(
                lambda tx: self.s.resources.vread(tx, rtype, parts[1], parts[3])
            )
            return self._read_response(request, stored)
        raise NotFound(f"no route for {request.url.path}")

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise MethodNotAllowed(f"{method} is not allowed here (allowed: {', '.join(allowed)})")

    async def _read(self, fn: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            with self.s.store.read() as tx:
                return fn(tx)

        return await run_in_threadpool(run)

    async def _write(self, fn: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            return self.s.store.run_write(fn)

        return await run_in_threadpool(run)

    async def _write_one(
        self,
        url: str,
        method: str,
        body: Any,
        write: Callable[[Any, Any], WriteResult],
        if_none_exist: str | None = None,
    ) -> WriteResult:
        """A create/update of one resource; order-graph resources take the order pipeline."""
        return await self._write(
            lambda tx: self.s.bundles.single_write(tx, url, method, body, write, if_none_exist)
        )

    # ---- type level --------------------------------------------------------------------
    async def type_level(self, request: Request, rtype: str) -> Response:
        method = request.method
        if method == "GET":
            return await self.search(request, rtype, list(request.query_params.multi_items()))
        if method == "POST":
            body = await http.json_body(request)
            cond = request.headers.get("if-none-exist")
            result = await self._write_one(
                rtype, "POST", body, lambda t, b: self.s.resources.create(t, rtype, b, cond), cond
            )
            return self._write_response(request, result)
        query = request.url.query
        if method == "PUT":
            if not query:
                raise MethodNotAllowed("PUT needs a resource id or search criteria")
            body = await http.json_body(request)
            if_match = parse_if_match(request.headers.get("if-match"))
            result = await self._write_one(
                f"{rtype}?{query}",
                "PUT",
                body,
                lambda t, b: self.s.resources.conditional_update(t, rtype, query, b, if_match),
            )
            return self._write_response(request, result)
        if method == "DELETE":
            if not query:
                raise MethodNotAllowed("DELETE needs a resource id or search criteria")

            def delete_all(tx: Any) -> int:
                ids = self.s.resources.find(tx, rtype, query)
                for res_id in ids:
                    self.s.resources.delete(tx, rtype, res_id)
                return len(ids)

            count = await self._write(delete_all)
            return http.fhir_response(
                outcome(
                    issue("information", "informational", f"deleted {count} {rtype} resource(s)")
                ),
                200,
            )
        raise MethodNotAllowed(f"{method} is not allowed on /{rtype}")

    async def search(self, request: Request, rtype: str, params: list[tuple[str, str]]) -> Response:
        strict = http.parse_prefer(request).handling == "strict"
        params = [(k, v) for k, v in params if k != "_format"]
        bundle = await self._read(lambda tx: search_bundle(tx, rtype, params, self.base, strict))
        return http.fhir_response(bundle)

    async def history(self, request: Request, rtype: str | None, res_id: str | None) -> Response:
        q = request.query_params
        try:
            count = min(int(q.get("_count", "50")), 1000)
            offset = int(q.get("_offset", "0"))
        except ValueError:
            raise BadRequest("_count and _offset must be integers") from None
        if count < 0 or offset < 0:
            raise BadRequest("_count and _offset must not be negative")
        since = q.get("_since")

        def run(tx: Any) -> dict[str, Any]:
            if res_id is not None:
                assert rtype is not None
                if tx.read(rtype, res_id) is None:
                    raise NotFound(f"{rtype}/{res_id} is not known")
            try:
                items = tx.history(rtype, res_id, count, offset, since)
            except ValueError:
                raise BadRequest(f"_since must be a FHIR instant, got {since!r}") from None
            return history_bundle(items, self.base)

        return http.fhir_response(await self._read(run))

    # ---- instance level ----------------------------------------------------------------
    async def instance(self, request: Request, rtype: str, res_id: str) -> Response:
        method = request.method
        if method == "GET":
            stored = await self._read(lambda tx: self.s.resources.read(tx, rtype, res_id))
            return self._read_response(request, stored)
        if method == "PUT":
            body = await http.json_body(request)
            if_match = parse_if_match(request.headers.get("if-match"))
            result = await self._write_one(
                f"{rtype}/{res_id}",
                "PUT",
                body,
                lambda t, b: self.s.resources.update(t, rtype, res_id, b, if_match),
            )
            return self._write_response(request, result)
        if method == "DELETE":
            if_match = parse_if_match(request.headers.get("if-match"))
            await self._write(lambda tx: self.s.resources.delete(tx, rtype, res_id, if_match))
            return http.fhir_response(None, 204)
        raise MethodNotAllowed(f"{method} is not allowed on /{rtype}/{{id}}")

    def _read_response(self, request: Request, stored: Any) -> Response:
        """A read: 304 when ``If-None-Match`` names the current version; ``_summary`` /
        ``_elements`` applied like in a search."""
        headers = http.resource_headers(stored, self.base)
        if http.etag_matches(request.headers.get("if-none-match"), stored.etag):
            return Response(status_code=304, headers=headers)
        q = request.query_params
        summary, elements = q.get("_summary"), q.get("_elements")
        if summary in (None, "false") and not elements:
            return http.fhir_response(stored.content, 200, headers)
        if summary not in (None, "true", "false", "text", "data"):
            raise BadRequest(f"invalid _summary value {summary!r} for a read")
        keep = [e.strip() for e in elements.split(",")] if elements else None
        return http.fhir_response(shape(stored.resource(), summary, keep), 200, headers)

    def _write_response(self, request: Request, result: WriteResult) -> Response:
        stored = result.stored
        status = 201 if result.created else 200
        headers = http.resource_headers(stored, self.base, location=True)
        prefer = http.parse_prefer(request).ret
        if prefer == "minimal":
            return http.fhir_response(None, status, headers)
        if prefer == "OperationOutcome":
            msg = f"{'created' if result.created else 'updated'} {stored.res_type}/{stored.res_id}"
            return http.fhir_response(
                outcome(issue("information", "informational", msg), *result.warnings),
                status,
                headers,
            )
        body = stored.resource()
        if result.warnings:
            # The number of warnings (the order pipeline's among them): the full list comes
            # back under Prefer: return=OperationOutcome (docs/api.md).
            headers["X-FHIRMWL-Warnings"] = str(len(result.warnings))
        return http.fhir_response(body, status, headers)

    def readonly(self, request: Request, registry: Any, rtype: str, parts: list[str]) -> Response:
        """Conformance resources shipped with the server: read and search only."""
        self._only(request.method, "GET")
        if len(parts) == 2:
            found = registry.get(rtype, parts[1])
            if found is None:
                raise NotFound(f"{rtype}/{parts[1]} is not known")
            return http.fhir_response(found)
        if len(parts) != 1:
            raise NotFound(f"no route for {request.url.path}")
        result = ("_format", "_count", "_summary")
        params = {k: v for k, v in request.query_params.items() if k not in result}
        count = request.query_params.get("_count")
        if count is not None and not count.isdigit():
            raise BadRequest("_count must be a non-negative integer", expression="_count")
        try:
            hits = registry.search(rtype, params)
        except KeyError as exc:
            raise BadRequest(f"unknown search parameter {exc.args[0]!r} for {rtype}") from None
        total = len(hits)
        if count == "0" or request.query_params.get("_summary") == "count":
            return http.fhir_response(
                {"resourceType": "Bundle", "type": "searchset", "total": total}
            )
        hits = hits[: int(count)] if count else hits
        return http.fhir_response(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": total,
                "entry": [
                    {
                        "fullUrl": f"{self.base}/{rtype}/{r['id']}",
                        "resource": r,
                        "search": {"mode": "match"},
                    }
                    for r in hits
                ],
            }
        )

    # ---- bundles and operations --------------------------------------------------------
    async def bundle(self, request: Request) -> Response:
        body = await http.json_body(request)
        prefer = http.parse_prefer(request).ret
        result = await run_in_threadpool(self.s.bundles.process, body, self.base, prefer)
        return http.fhir_response(result)

    async def operation(self, request: Request, parts: list[str]) -> Response:
        name = parts[-1][1:]
        if len(parts) == 1:
            level, rtype, res_id = "system", None, None
        elif len(parts) == 2:
            level, rtype, res_id = "type", parts[0], None
        elif len(parts) == 3:
            level, rtype, res_id = "instance", parts[0], parts[1]
        else:
            raise NotFound(f"no route for {request.url.path}")
        op = self.s.find_operation(level, rtype, name)
        if op is None:
            if rtype:
                check_type(rtype)
            where = f"{rtype} " if rtype else ""
            raise NotFound(f"operation ${name} is not supported at {where}{level} level")
        self._only(request.method, *op.methods)
        result = await op.handler(self.s, request, rtype, res_id)
        return result if isinstance(result, Response) else http.fhir_response(result)


def create_app(services: Services) -> Starlette:
    api = FhirApi(services)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    routes = [
        Route("/fhir", api.dispatch, methods=methods),
        Route("/fhir/{path:path}", api.dispatch, methods=methods),
    ]
    from fhirmwl import audit, web
    from fhirmwl.api import dicomweb
    from fhirmwl.audit import http as audit_http
    from fhirmwl.ops import health, logs, metrics

    middleware = [Middleware(logs.RequestIdMiddleware), Middleware(metrics.MetricsMiddleware)]
    writer = audit.writer_of(services)
    if writer is not None:  # outside authentication, so refused tokens are audited too
        middleware.append(Middleware(audit_http.AuditMiddleware, writer=writer))
    from fhirmwl.security.http_limits import BodyLimitMiddleware

    # The size limit sits before authentication, which reads a Bundle body to check each entry.
    max_body = services.settings.http_max_body_bytes
    middleware.append(Middleware(BodyLimitMiddleware, max_bytes=max_body))
    middleware += security.auth_middleware(services)  # bearer tokens and SMART scopes when on
    middleware += web.auth_middleware(services)  # the desk's login session when auth is on
    from fhirmwl.security import login

    app = Starlette(
        routes=[
            *health.routes(services),
            *audit_http.routes(services),
            *routes,
            dicomweb.mount(services),
            *login.routes(services),
            *web.routes(services),
        ],
        middleware=middleware,
    )
    app.state.services = services
    return app
