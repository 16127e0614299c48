"""``GET|POST [base]/Task/$mwl-query``: the guide's "FHIR-based MWL query" (use case 2).

Inputs are DICOM keys named by keyword (bare Scheduled Procedure Step keywords such as
``Modality`` go into the SPS item; ``ScheduledProcedureStepSequence.X`` and tag paths work too)
with C-FIND matching syntax verbatim. The query is answered by the same worklist index and the
same matcher as the C-FIND SCP: matching steps come from ``StoreWorklistSource``; for the FHIR
form their Tasks and context resources are then read in one batch per include level (not by
walking each Task's graph); for ``Accept: application/dicom+json`` the answer is the array of
whole worklist items (the attributes of docs/dicom-conformance.md §4), or, with
``_elements=Keyword,…``, what C-FIND returns for the query's keys plus those. No side effects
(``affectsState=false``).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhirmwl.api import http
from fhirmwl.api.worklist_params import add_return_keys, parse_keys, to_query
from fhirmwl.api.worklist_peer import PeerScope
from fhirmwl.errors import BadRequest
from fhirmwl.fhir.model import CANON
from fhirmwl.fhir.search import parse_search
from fhirmwl.services.container import Operation, Services
from fhirmwl.services.search import resolve_includes
from fhirmwl.services.worklist.source import Cursor, cursor_of
from fhirmwl.worklist.project import project_json
from fhirmwl.worklist.query import WorklistQuery, WorklistQueryError

DICOM_JSON = "application/dicom+json"
DEFAULT_COUNT = 100
MAX_COUNT = 1000
RESULT_PARAMS = frozenset({"_count", "_offset", "_format", "_elements", "_cursor"})
# Context of one step: RequestedProcedure, ImagingServiceRequest, Patient, Encounter, Device,
# ImagingStudy (the same graph the worklist item is built from).
CONTEXT_INCLUDES: list[tuple[str, str]] = [
    ("_include", "Task:based-on"),
    ("_include:iterate", "ServiceRequest:based-on"),
    ("_include", "Task:patient"),
    ("_include", "Task:encounter"),
    ("_include", "Task:requested-performer-reference"),
    ("_revinclude:iterate", "ImagingStudy:based-on"),
]


async def _inputs(request: Request) -> list[tuple[str, str]]:
    pairs = list(request.query_params.multi_items())
    if request.method != "POST":
        return pairs
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded" or not await request.body():
        return pairs + await http.form_params(request)
    body = await http.json_body(request)
    if body.get("resourceType") != "Parameters":
        raise BadRequest("POST $mwl-query takes Parameters or a form body")
    for p in body.get("parameter") or []:
        values = [v for k, v in p.items() if k.startswith("value")]
        if len(values) != 1 or not isinstance(values[0], str | int):
            raise BadRequest(f"parameter {p.get('name')!r} needs one string value")
        pairs.append((str(p.get("name")), str(values[0])))
    return pairs


def _int(pairs: list[tuple[str, str]], name: str, default: int) -> int:
    raw = next((v for k, v in pairs if k == name), None)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequest(f"parameter {name!r} must be a non-negative integer", expression=name)
    return int(raw)


def _wants_dicom(request: Request, pairs: list[tuple[str, str]]) -> bool:
    fmt = next((v for k, v in pairs if k == "_format"), "")
    return DICOM_JSON in request.headers.get("accept", "") or fmt in (DICOM_JSON, "dicom+json")


def parse_inputs(pairs: list[tuple[str, str]], strict: bool) -> tuple[WorklistQuery, list[str]]:
    """The shared query from the operation's inputs; errors are 400s naming the parameter."""
    keys = [(k, v) for k, v in pairs if k not in RESULT_PARAMS]
    try:
        parsed, ignored = parse_keys(keys, strict=strict)
        return to_query(parsed), ignored
    except WorklistQueryError as exc:
        name = next((k for k, _ in keys if repr(k) in exc.message), None)
        raise BadRequest(exc.message, expression=name) from None


def returned_keys(pairs: list[tuple[str, str]], strict: bool) -> WorklistQuery | None:
    """``_elements=Keyword,…`` restricts the DICOM JSON answer to the query's keys plus these
    (C-FIND's projection); without it the answer is the whole worklist item."""
    lists = [v for k, v in pairs if k == "_elements"]
    if not lists:
        return None
    elements = [(e.strip(), "") for v in lists for e in v.split(",") if e.strip()]
    keys = [(k, v) for k, v in pairs if k not in RESULT_PARAMS]
    try:
        parsed, _ = parse_keys(keys, strict=strict)
        extra, _ = parse_keys(elements, strict=True)
        return to_query(add_return_keys(parsed, list(extra)))
    except WorklistQueryError as exc:
        raise BadRequest(exc.message, expression="_elements") from None


def _page(
    services: Services, q: WorklistQuery, offset: int, count: int, after: Cursor | None
) -> tuple[list[tuple[str, Any]], bool]:
    source = services.worklist()
    found = list(source.find_json_with_ids(q, offset + count + 1, after))
    return found[offset : offset + count], len(found) > offset + count


def _encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(cursor))).decode("ascii")


def _decode_cursor(pairs: list[tuple[str, str]]) -> Cursor | None:
    raw = next((v for k, v in pairs if k == "_cursor"), None)
    if raw is None:
        return None
    try:
        d, t, task = orjson.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
        return str(d), str(t), str(task)
    except (ValueError, TypeError, UnicodeError):
        raise BadRequest(
            "parameter '_cursor' is not a cursor of this server", expression="_cursor"
        ) from None


def dicom_items(q: WorklistQuery | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored DICOM JSON items, whole, or projected onto ``q`` as C-FIND would."""
    if q is None or not q.keys:
        return items
    return [project_json(item, q) for item in items]


def _link(base: str, pairs: list[tuple[str, str]], count: int, page: list[tuple[str, str]]) -> str:
    kept = [(k, v) for k, v in pairs if k not in ("_count", "_offset", "_cursor")]
    query = urlencode([*kept, ("_count", str(count)), *page])
    return f"{base}/Task/$mwl-query?{query}"


def _bundle(services: Services, task_ids: list[str]) -> list[dict[str, Any]]:
    base = services.settings.fhir_base
    includes = parse_search("Task", CONTEXT_INCLUDES, True)
    with services.store.read() as tx:
        tasks = {s.res_id: s for s in tx.read_many([("Task", t) for t in task_ids])}
        added = resolve_includes(tx, includes, [("Task", t) for t in task_ids if t in tasks])
    entries = [
        {
            "fullUrl": f"{base}/Task/{t}",
            "resource": tasks[t].resource(),
            "search": {"mode": "match"},
        }
        for t in task_ids
        if t in tasks
    ]
    entries += [
        {
            "fullUrl": f"{base}/{s.res_type}/{s.res_id}",
            "resource": s.resource(),
            "search": {"mode": "include"},
        }
        for s in added
    ]
    return entries


async def mwl_query_op(
    services: Services, request: Request, rtype: str | None, res_id: str | None
) -> Response:
    peer = PeerScope(services, request)  # C-FIND's access rules (security.worklist_peers)
    pairs = await _inputs(request)
    strict = http.parse_prefer(request).handling == "strict"
    q, ignored = parse_inputs(pairs, strict)
    count = min(_int(pairs, "_count", DEFAULT_COUNT), MAX_COUNT)
    offset = _int(pairs, "_offset", 0)
    after = _decode_cursor(pairs)
    narrowed = peer.narrow(q)
    page: list[tuple[str, Any]] = []
    has_next = False
    if narrowed is not None:  # None: another station's items, which C-FIND would not answer
        page, has_next = await run_in_threadpool(_page, services, narrowed, offset, count, after)
    if _wants_dicom(request, pairs):
        shown = returned_keys(pairs, strict)
        shown = shown if shown is None else peer.narrow(shown) or shown
        body = orjson.dumps(dicom_items(shown, [item for _, item in page]))
        headers = {"Warning": f'299 fhirmwl "ignored: {", ".join(ignored)}"'} if ignored else None
        return Response(body, 200, headers, media_type=DICOM_JSON)
    base = services.settings.fhir_base
    kept = [(k, v) for k, v in pairs if k not in ignored]
    here = [("_cursor", _encode_cursor(after))] if after else [("_offset", str(offset))]
    links = [{"relation": "self", "url": _link(base, kept, count, here)}]
    if has_next:  # a keyset cursor: stable while steps are added or removed meanwhile
        last = [("_cursor", _encode_cursor(cursor_of(*page[-1])))]
        links.append({"relation": "next", "url": _link(base, kept, count, last)})
    if offset > 0 and after is None:
        back = [("_offset", str(max(offset - count, 0)))]
        links.append({"relation": "previous", "url": _link(base, kept, count, back)})
    entries = await run_in_threadpool(_bundle, services, [t for t, _ in page])
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if offset == 0 and after is None and not has_next:
        bundle["total"] = len(page)
    bundle["link"] = links
    bundle["entry"] = entries
    return http.fhir_response(bundle)


def install(services: Services) -> None:
    services.add_operation(
        Operation(
            "mwl-query",
            "type",
            "Task",
            mwl_query_op,
            methods=("GET", "POST"),
            definition=f"{CANON}/OperationDefinition/mwl-query",
        )
    )
