"""Content negotiation for the FHIR API: JSON, R5 XML, or 406 — never JSON under an XML label.

The routes produce FHIR JSON. ``negotiate`` reads ``_format`` and ``Accept`` (with q-values) once
per request; ``render`` turns a JSON answer into R5 XML when XML was asked for, through the
``fhir.resources`` models (``model_dump_xml``; lxml), so we write no serializer of our own.
``xml_body`` reads an XML request body the same way. A client that accepts neither JSON nor XML
gets 406 with an OperationOutcome in JSON (the one representation every FHIR client reads).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhirmwl.errors import BadRequest, FhirMwlError

JSON, XML, DICOM_JSON = "json", "xml", "dicom+json"
FHIR_XML = "application/fhir+xml"
_BY_MEDIA = {
    "application/fhir+json": JSON,
    "application/json": JSON,
    "application/json+fhir": JSON,
    "json": JSON,
    "*/*": JSON,
    "application/*": JSON,
    FHIR_XML: XML,
    "application/xml": XML,
    "application/xml+fhir": XML,
    "text/xml": XML,
    "xml": XML,
    # DICOM JSON: $mwl-query answers it itself (PS3.18 F.2); FHIR answers are not relabelled.
    "application/dicom+json": DICOM_JSON,
    "dicom+json": DICOM_JSON,
}


class NotAcceptable(FhirMwlError):
    http_status = 406
    issue_code = "not-supported"


def _accept(header: str) -> str | None:
    """The best format an ``Accept`` header allows (q-values honoured), None if none."""
    best: tuple[float, str] | None = None
    for part in header.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        fmt = _BY_MEDIA.get(media.lower())
        if fmt is not None and q > 0 and (best is None or q > best[0]):
            best = (q, fmt)
    return best[1] if best else None


def negotiate(request: Request) -> str:
    """``json``, ``xml`` (or ``dicom+json``, which only some operations produce) for the
    answer; raises 406 for anything else."""
    fmt = request.query_params.get("_format")
    if fmt:
        found = _BY_MEDIA.get(fmt.split(";")[0].strip().lower())
        if found is None or fmt.strip() in ("*/*", "application/*"):
            raise NotAcceptable(f"_format {fmt!r} is not supported; use json or xml")
        return found
    header = request.headers.get("accept", "").strip()
    if not header:
        return JSON
    found = _accept(header)
    if found is None:
        raise NotAcceptable(
            f"cannot answer in any of {header[:200]!r}; this server speaks "
            "application/fhir+json and application/fhir+xml"
        )
    return found


def to_xml(resource: dict[str, Any]) -> bytes:
    from fhir.resources import get_fhir_model_class

    model = get_fhir_model_class(str(resource.get("resourceType")))
    xml: Any = model.model_validate(resource).model_dump_xml()
    return xml.encode() if isinstance(xml, str) else bytes(xml)


def render(response: Response, fmt: str) -> Response:
    """The same answer in XML when ``fmt`` is XML (JSON bodies only; others pass through)."""
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("application/fhir+json") or fmt == JSON:
        return response
    if fmt != XML:
        if response.status_code >= 400:
            return response  # the error itself matters more than its representation
        raise NotAcceptable(f"this answer is FHIR JSON or FHIR XML, not {fmt}")
    try:
        body = to_xml(orjson.loads(bytes(response.body)))
    except Exception as exc:  # noqa: BLE001 - a resource the XML form cannot carry
        detail = type(exc).__name__
        raise NotAcceptable(f"this answer cannot be rendered as FHIR XML ({detail})") from None
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers["content-type"] = f"{FHIR_XML}; charset=utf-8"
    return Response(body, status_code=response.status_code, headers=headers)


def xml_body(raw: bytes) -> dict[str, Any]:
    """A FHIR XML request body as FHIR JSON (parsed by the ``fhir.resources`` models)."""
    from fhir.resources import get_fhir_model_class
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)  # no XXE
    try:
        root = etree.fromstring(raw, parser=parser)
        name = etree.QName(root)
        if name.namespace != "http://hl7.org/fhir":
            raise BadRequest("request body is not FHIR XML (namespace http://hl7.org/fhir)")
        rtype = name.localname
        model = get_fhir_model_class(rtype)
    except (etree.XMLSyntaxError, KeyError, ValueError) as exc:
        raise BadRequest(f"request body is not FHIR XML: {str(exc)[:200]}") from None
    try:
        parsed = model.model_validate_xml(raw, xmlparser=parser)
    except Exception:  # noqa: BLE001 - pydantic wording must not reach the client
        raise BadRequest(
            f"the XML body is not a valid FHIR R5 {rtype}; send it as application/fhir+json "
            "(or to $validate) for the element-by-element issues"
        ) from None
    return dict(orjson.loads(parsed.model_dump_json(by_alias=True, exclude_none=True)))
