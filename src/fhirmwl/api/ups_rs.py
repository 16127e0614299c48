"""UPS-RS Change Workitem State and Request Cancellation (PS3.18 §11.7, §11.8) over HTTP.

``PUT /dicomweb/workitems/{uid}/state`` takes a DICOM JSON data set (or a one-element array)
with Procedure Step State (0074,1000) and Transaction UID (0008,1195);
``POST /dicomweb/workitems/{uid}/cancelrequest`` takes an optional one with Reason For
Cancellation (0074,1238). Both call ``ups.state.UpsStateService`` (the order service's status
guard) and answer with the PS3.18 status and ``Warning: 299`` text.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhirmwl.services.container import Services
from fhirmwl.ups.state import Outcome

STATE, TRANSACTION_UID, REASON = "00741000", "00081195", "00741238"
MAX_BODY = 1 << 16


class PayloadError(Exception):
    pass


async def _dataset(request: Request, required: bool) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        if required:
            raise PayloadError("The request has no DICOM JSON payload.")
        return {}
    if len(body) > MAX_BODY:
        raise PayloadError("The payload is too large.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PayloadError("The payload is not JSON.") from None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise PayloadError("The payload must be one DICOM JSON data set.")
    return data


def _value(ds: dict[str, Any], tag: str) -> str:
    values = (ds.get(tag) or {}).get("Value") if isinstance(ds.get(tag), dict) else None
    return str(values[0]).strip() if isinstance(values, list) and values else ""


def _answer(outcome: Outcome) -> Response:
    headers = {"Warning": f'299 fhirmwl "{outcome.warning}"'} if outcome.warning else {}
    return Response(None, outcome.http_status, headers)


def routes(services: Services) -> list[Route]:
    async def change_state(request: Request) -> Response:
        try:
            ds = await _dataset(request, required=True)
        except PayloadError as exc:
            return _answer(Outcome(400, str(exc)))
        service = services.ups_state
        uid = request.path_params["uid"]
        outcome = await run_in_threadpool(
            service.change_state, uid, _value(ds, STATE), _value(ds, TRANSACTION_UID)
        )
        return _answer(outcome)

    async def cancel_request(request: Request) -> Response:
        try:
            ds = await _dataset(request, required=False)
        except PayloadError as exc:
            return _answer(Outcome(400, str(exc)))
        service = services.ups_state
        outcome = await run_in_threadpool(
            service.request_cancel, request.path_params["uid"], _value(ds, REASON)
        )
        return _answer(outcome)

    return [
        Route("/workitems/{uid}/state", change_state, methods=["PUT"]),
        Route("/workitems/{uid}/cancelrequest", cancel_request, methods=["POST"]),
    ]
