"""Read-only DICOMweb worklist: MWL-RS search (PS3.18 ch. 14) and UPS-RS search (ch. 11).

``GET /dicomweb/modality-scheduled-procedure-steps`` answers exactly like the C-FIND SCP — same
index, same matcher, same projection — but as ``application/dicom+json``; results are whole
worklist items unless ``includefield`` names attributes: then the type 1/2 keys of Table K.6-1,
the matched keys and those (``includefield=all``: whole items).
``GET /dicomweb/workitems`` re-expresses the same steps as UPS workitems
(``mapping.fhir_to_dicom.ups``) and matches UPS attributes on them; the pre-filter on the
index is derived from the UPS keys that have an MWL equivalent, so the index still bounds the
scan.

Status codes (PS3.18 §8.3.4, §11.9.3): 200 with results, 204 when nothing matches, 206 when more
results exist beyond ``limit`` (with a ``Warning: 299``), 400 with a reason for bad parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from fhirmwl.api.dicomxml import XML_MEDIA, multipart_related, native_xml
from fhirmwl.api.ups_rs import routes as ups_state_routes
from fhirmwl.api.worklist_params import SPS, add_return_keys, parse_keys, to_query
from fhirmwl.api.worklist_peer import PeerScope
from fhirmwl.errors import FhirMwlError, StoreError
from fhirmwl.mapping.fhir_to_dicom.ups import workitem
from fhirmwl.security.access import Forbidden
from fhirmwl.services.container import Services
from fhirmwl.worklist.jsoncodec import dataset_to_dict
from fhirmwl.worklist.match import matches
from fhirmwl.worklist.project import project_json
from fhirmwl.worklist.query import WorklistQuery

DICOM_JSON = "application/dicom+json"
MAX_RESULTS = 1000
CONTROL = frozenset(
    {
        "includefield",
        "limit",
        "offset",
        "fuzzymatching",
        "emptyvaluematching",
        "multiplevaluematching",
    }
)
UNSUPPORTED_FLAGS = ("fuzzymatching", "emptyvaluematching", "multiplevaluematching")
_TOP = (
    "PatientName PatientID PatientBirthDate PatientSex PatientWeight "
    "ConfidentialityConstraintOnPatientDataDescription PatientState PregnancyStatus "
    "MedicalAlerts Allergies SpecialNeeds AdmissionID CurrentPatientLocation "
    "ReferencedPatientSequence RequestedProcedureID RequestedProcedureDescription "
    "RequestedProcedureCodeSequence StudyInstanceUID ReferencedStudySequence "
    "RequestedProcedurePriority PatientTransportArrangements AccessionNumber "
    "RequestingPhysician ReferringPhysicianName"
)
_SPS = (
    "ScheduledStationAETitle ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime "
    "Modality ScheduledPerformingPhysicianName ScheduledProcedureStepDescription "
    "ScheduledStationName ScheduledProcedureStepLocation ScheduledProtocolCodeSequence "
    "PreMedication ScheduledProcedureStepID RequestedContrastAgent"
)
# Table K.6-1 return keys of type 1, 1C, 2 and 2C: what every MWL-RS result carries.
MWL_RETURN_KEYS = (*_TOP.split(), *(f"{SPS}.{k}" for k in _SPS.split()))


class DicomwebError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad(reason: str) -> Response:
    return Response(reason, 400, {"Warning": f'299 fhirmwl "{reason[:200]}"'}, "text/plain")


class Search:
    """Parsed control parameters and match keys of one search request."""

    def __init__(self, request: Request) -> None:
        pairs = list(request.query_params.multi_items())
        accept = request.headers.get("accept", "").lower()
        self.xml = "multipart/related" in accept and XML_MEDIA in accept
        self.warnings: list[str] = []
        self.includes: list[str] = []
        for name in UNSUPPORTED_FLAGS:
            if any(k == name and v.lower() == "true" for k, v in pairs):
                self.warnings.append(f"The {name} parameter is not supported.")
        for k, v in pairs:
            if k == "includefield":
                self.includes += [f for f in v.split(",") if f]
        self.peer: PeerScope | None = None  # C-FIND's access rules, set by the endpoint
        self.limit = min(self._int(pairs, "limit", MAX_RESULTS), MAX_RESULTS)
        self.offset = self._int(pairs, "offset", 0)
        try:
            self.keys, _ = parse_keys([(k, v) for k, v in pairs if k not in CONTROL], strict=True)
            self.include_paths = [] if "all" in self.includes else self._include_paths()
        except FhirMwlError as exc:
            raise DicomwebError(exc.message) from None

    @staticmethod
    def _int(pairs: list[tuple[str, str]], name: str, default: int) -> int:
        raw = next((v for k, v in pairs if k == name), None)
        if raw is None:
            return default
        if not raw.isdigit():
            raise DicomwebError(f"{name} must be an unsigned integer, got {raw!r}")
        return int(raw)

    def _include_paths(self) -> list[str]:
        keys, _ = parse_keys([(f, "") for f in self.includes], strict=True)
        return list(keys)

    def response(self, results: list[dict[str, Any]], more: bool) -> Response:
        """DICOM JSON, or ``multipart/related; type="application/dicom+xml"`` when the
        ``Accept`` header asks for it (PS3.18 10.6, PS3.19 Native DICOM Model)."""
        headers: dict[str, str] = {}
        warnings = [f'299 fhirmwl "{w}"' for w in self.warnings]
        if more:
            warnings.append('299 fhirmwl "There are more results; use offset to page."')
        if warnings:
            headers["Warning"] = ", ".join(warnings)
        if not results:
            return Response(None, 204, headers)
        if self.xml:
            body, media = multipart_related([native_xml(r) for r in results])
            return Response(body, 206 if more else 200, headers, media)
        return Response(orjson.dumps(results), 206 if more else 200, headers, DICOM_JSON)


def _page(found: list[Any], search: Search) -> tuple[list[Any], bool]:
    end = search.offset + search.limit
    return found[search.offset : end], len(found) > end


def whole_items(search: Search) -> bool:
    """Without ``includefield`` (or with ``includefield=all``) results are whole items."""
    return not search.includes or "all" in search.includes


def mwl_query(search: Search) -> WorklistQuery:
    """The C-FIND-equivalent query: match keys plus the Table K.6-1 type 1/2 keys and the
    ``includefield`` keys (used for matching always, for the projection with includefield)."""
    if whole_items(search):
        return to_query(search.keys)
    return to_query(add_return_keys(search.keys, [*MWL_RETURN_KEYS, *search.include_paths]))


def _narrow(search: Search, q: WorklistQuery) -> WorklistQuery | None:
    return q if search.peer is None else search.peer.narrow(q)


def mwl_search(services: Services, search: Search) -> tuple[list[dict[str, Any]], bool]:
    source = services.worklist()
    q = _narrow(search, mwl_query(search))
    if q is None:
        return [], False
    found = [item for _, item in source.find_json_with_ids(q, search.offset + search.limit + 1)]
    page, more = _page(found, search)
    if whole_items(search):
        return page, more
    return [project_json(i, q) for i in page], more


_UPS_TO_MWL = {
    "PatientID": "PatientID",
    "PatientName": "PatientName",
    "PatientBirthDate": "PatientBirthDate",
    "PatientSex": "PatientSex",
    "StudyInstanceUID": "StudyInstanceUID",
    "ReferencedRequestSequence.AccessionNumber": "AccessionNumber",
    "ReferencedRequestSequence.RequestedProcedureID": "RequestedProcedureID",
    "ScheduledStationNameCodeSequence.CodeValue": f"{SPS}.ScheduledStationAETitle",
    "ScheduledStationClassCodeSequence.CodeValue": f"{SPS}.Modality",
}


def _date_part(value: str) -> str:
    ends = [e[:8] if len(e) >= 8 else "" for e in value.split("-")]
    if len(ends) == 1:
        return ends[0]
    return f"{ends[0]}-{ends[1]}" if any(ends) else ""


def prefilter(keys: dict[str, str]) -> WorklistQuery:
    """An MWL query selecting a superset of the steps whose workitems match the UPS ``keys``."""
    mwl = {_UPS_TO_MWL[k]: v for k, v in keys.items() if k in _UPS_TO_MWL and v}
    start = keys.get("ScheduledProcedureStepStartDateTime", "")
    if _date_part(start):
        mwl[f"{SPS}.ScheduledProcedureStepStartDate"] = _date_part(start)
    return to_query(mwl)


def ups_search(services: Services, search: Search) -> tuple[list[dict[str, Any]], bool]:
    source = services.worklist()
    q = to_query(search.keys)
    pre = _narrow(search, prefilter(search.keys))
    if pre is None:
        return [], False
    found = []
    for task_id, item in source.find_with_ids(pre):
        ups = workitem(task_id, item)
        if matches(q, ups):
            found.append(ups)
            if len(found) > search.offset + search.limit:
                break
    page, more = _page(found, search)
    return [dataset_to_dict(u) for u in page], more


def _endpoint(
    services: Services, run: Callable[[Services, Search], tuple[list[dict[str, Any]], bool]]
) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        try:
            search = Search(request)
            search.peer = PeerScope(services, request)
        except DicomwebError as exc:
            return _bad(exc.reason)
        except Forbidden as exc:
            return Response(exc.message, 403, media_type="text/plain")
        except FhirMwlError as exc:
            return _bad(exc.message)
        try:
            results, more = await run_in_threadpool(run, services, search)
        except StoreError as exc:  # the database's own text stays in the server log
            logging.getLogger("fhirmwl.api").error("DICOMweb search: store failure: %s", exc)
            return Response("the database failed", 500, media_type="text/plain")
        except FhirMwlError as exc:
            return _bad(exc.message)
        return search.response(results, more)

    return handler


def mount(services: Services) -> Mount:
    """The ``/dicomweb`` router (worklist searches; UPS state changes from ``api.ups_rs``)."""
    return Mount(
        "/dicomweb",
        routes=[
            Route(
                "/modality-scheduled-procedure-steps",
                _endpoint(services, mwl_search),
                methods=["GET"],
            ),
            Route("/workitems", _endpoint(services, ups_search), methods=["GET"]),
            *ups_state_routes(services),
        ],
    )
