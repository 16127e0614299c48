"""HTTP adapters of the three order operations; the rules live in ``services.orders``.

``POST /fhir/$create-order`` (Parameters with ``order``, or a bare transaction Bundle; 201 with
the OrderBundle, 200 when the placer order number is already known), ``POST
/fhir/ServiceRequest/{id}/$cancel-order`` (optional ``reason``) and ``POST
/fhir/ServiceRequest/{id}/$update-order`` (``If-Match`` on the ServiceRequest version).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhirmwl.api import http
from fhirmwl.errors import BadRequest, DuplicateIdentifier
from fhirmwl.fhir.model import CANON
from fhirmwl.fhir.outcome import outcome
from fhirmwl.services import orders
from fhirmwl.services.bundles import parse_if_match
from fhirmwl.services.container import Operation, Services

OPDEF = f"{CANON}/OperationDefinition"


def _param(body: dict[str, Any], name: str) -> Any:
    for p in body.get("parameter") or []:
        if p.get("name") == name:
            for key, value in p.items():
                if key == "resource" or key.startswith("value"):
                    return value
    return None


async def _order_input(request: Request) -> dict[str, Any]:
    body = await http.json_body(request)
    if body.get("resourceType") == "Parameters":
        order = _param(body, "order")
        if not isinstance(order, dict):
            raise BadRequest("Parameters need an 'order' parameter holding a Bundle")
        return order
    if body.get("resourceType") != "Bundle":
        raise BadRequest("send a Bundle, or Parameters with an 'order' Bundle")
    return body


def _ctx(services: Services) -> orders.OrderContext:
    ctx: orders.OrderContext = services.orders()
    return ctx


def _answer(result: orders.OrderResult, status: int) -> Response:
    headers = {"Location": f"{_base_url(result)}", "X-Order-Id": result.isr_id}
    bundle = result.bundle
    if result.issues:
        bundle = dict(bundle, entry=[*bundle["entry"], {"resource": outcome(*result.issues)}])
    return http.fhir_response(bundle, status, headers)


def _base_url(result: orders.OrderResult) -> str:
    first = result.bundle["entry"][0]["fullUrl"]
    return str(first)


async def create_order_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> Response:
    order = await _order_input(request)
    ctx = _ctx(services)

    def run() -> orders.OrderResult:
        with services.store.write() as tx:
            return orders.create_order(tx, order, ctx)

    try:
        result = await run_in_threadpool(run)
    except DuplicateIdentifier:
        result = await run_in_threadpool(run)  # a twin request won the race: answer with it
    return _answer(result, 201 if result.created else 200)


async def cancel_order_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> Response:
    reason = None
    if await request.body():
        body = await http.json_body(request)
        reason = _param(body, "reason") if body.get("resourceType") == "Parameters" else None
    ctx = _ctx(services)
    assert res_id is not None

    def run() -> orders.OrderResult:
        with services.store.write() as tx:
            return orders.cancel_order(tx, res_id, reason, True, ctx)

    result = await run_in_threadpool(run)
    return http.fhir_response(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "bundle", "resource": result.bundle},
                {"name": "outcome", "resource": outcome(*result.issues)},
            ],
        }
    )


async def update_order_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> Response:
    order = await _order_input(request)
    if_match = parse_if_match(request.headers.get("if-match"))
    ctx = _ctx(services)
    assert res_id is not None

    def run() -> orders.OrderResult:
        with services.store.write() as tx:
            return orders.update_order(tx, res_id, order, if_match, ctx)

    return _answer(await run_in_threadpool(run), 200)


def install(services: Services) -> None:
    """The three order operations (the lifecycle is ``services.orders.install_orders``)."""
    services.add_operation(
        Operation(
            "create-order", "system", None, create_order_op, definition=f"{OPDEF}/create-order"
        )
    )
    services.add_operation(
        Operation(
            "cancel-order",
            "instance",
            "ServiceRequest",
            cancel_order_op,
            definition=f"{OPDEF}/cancel-order",
        )
    )
    services.add_operation(
        Operation(
            "update-order",
            "instance",
            "ServiceRequest",
            update_order_op,
            definition=f"{OPDEF}/update-order",
        )
    )
