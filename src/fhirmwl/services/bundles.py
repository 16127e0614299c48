"""Batch and transaction Bundles.

A transaction is one unit of work: ``urn:uuid:`` fullUrls get server ids first, conditional
creates/updates and conditional references are resolved, references are rewritten, then entries
run in the order FHIR prescribes (DELETE, POST, PUT/PATCH, GET). Any failure rolls everything
back and the error names the entry. A batch runs each entry in its own unit of work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from fhirmwl.errors import BadRequest, FhirMwlError, NotFound, PreconditionFailed
from fhirmwl.fhir.outcome import from_error, outcome
from fhirmwl.fhir.structure import rerooted
from fhirmwl.services.resources import ResourceService, WriteResult, check_type
from fhirmwl.services.search import search_bundle
from fhirmwl.store import Stored, Tx

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
# Resources of an order graph: a single write of one goes through the order hook.
ORDER_GRAPH_TYPES = frozenset({"ServiceRequest", "Task", "ImagingStudy"})
_STATUS = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: int | None
    target: tuple[str, str] | None = None  # (type, id) decided before processing


def parse_if_match(value: str | None) -> int | None:
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise BadRequest(f'If-Match must be an ETag like W/"3", got {value!r}')
    return int(text)


def _entries(bundle: dict[str, Any]) -> list[_Entry]:
    out = []
    for i, raw in enumerate(bundle.get("entry") or []):
        req = raw.get("request") or {}
        method, url = str(req.get("method", "")).upper(), req.get("url")
        if method not in _ORDER or not url:
            raise BadRequest(
                f"Bundle.entry[{i}].request needs a method and url",
                expression=f"Bundle.entry[{i}].request",
            )
        out.append(
            _Entry(
                i,
                method,
                url.lstrip("/"),
                raw.get("fullUrl"),
                raw.get("resource"),
                req.get("ifNoneExist"),
                parse_if_match(req.get("ifMatch")),
            )
        )
    return out


def rewrite_references(node: Any, mapping: dict[str, str]) -> Any:
    """A copy of ``node`` (dicts and lists copied, scalars shared) with every
    ``reference`` string that ``mapping`` knows replaced by its mapped value."""
    if isinstance(node, dict):
        return _rewrite_dict(node, mapping)
    if isinstance(node, list):
        return _rewrite_list(node, mapping)
    return node


# The two helpers recurse only into dicts and lists (a call per scalar was most of the cost:
# an order Bundle has thousands of them and is rewritten on every transaction).
def _rewrite_dict(node: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out[key] = _rewrite_dict(value, mapping)
        elif isinstance(value, list):
            out[key] = _rewrite_list(value, mapping)
        elif key == "reference" and isinstance(value, str) and value in mapping:
            out[key] = mapping[value]
        else:
            out[key] = value
    return out


def _rewrite_list(node: list[Any], mapping: dict[str, str]) -> list[Any]:
    return [
        _rewrite_dict(v, mapping)
        if isinstance(v, dict)
        else _rewrite_list(v, mapping)
        if isinstance(v, list)
        else v
        for v in node
    ]


def _collect_refs(node: Any, found: set[str]) -> None:
    """Add every conditional reference (``Type?criteria``) in ``node`` to ``found``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                _collect_refs(value, found)
            elif key == "reference" and isinstance(value, str) and "?" in value:
                found.add(value)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, dict | list):
                _collect_refs(v, found)


class OrderHook(Protocol):
    """Completion and worklist check of order graphs (``services.orders.pipeline``)."""

    def before(self, tx: Tx, bundle: dict[str, Any]) -> list[dict[str, Any]]: ...

    def after(
        self, tx: Tx, bundle: dict[str, Any], response: dict[str, Any]
    ) -> list[dict[str, Any]]: ...


def _locate_in_entry(err: FhirMwlError, e: _Entry) -> None:
    """Point the issues of a failed entry at it: expressions become
    ``Bundle.entry[i].resource…`` and every text names the entry and its request."""
    root = f"Bundle.entry[{e.index}]"
    issues = err.issues or from_error(err)["issue"]
    rtype = (e.resource or {}).get("resourceType")
    if isinstance(rtype, str):
        issues = rerooted(issues, rtype, f"{root}.resource")
    where = f"{root} ({e.method} {e.url})"
    err.issues = [
        i
        if i["diagnostics"].startswith(root)
        else dict(i, diagnostics=f"{where}: {i['diagnostics']}")
        for i in issues
    ]
    err.message = err.issues[0]["diagnostics"] if err.issues else f"{where}: {err.message}"


class BundleProcessor:
    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources
        self.store = resources.store
        self.order_hook: OrderHook | None = None  # set by the order service (install_orders)

    def process(self, bundle: dict[str, Any], base: str, prefer: str | None) -> dict[str, Any]:
        if bundle.get("resourceType") != "Bundle":
            raise BadRequest("POST to the base URL needs a Bundle")
        kind = bundle.get("type")
        if kind == "transaction":
            return self.store.run_write(
                lambda tx: self._order_transaction(tx, bundle, base, prefer)
            )
        if kind == "batch":
            return self.batch(bundle, base, prefer)
        raise BadRequest(
            f"Bundle.type must be transaction or batch, got {kind!r}", expression="Bundle.type"
        )

    # ---- transaction -------------------------------------------------------------------
    def _order_transaction(
        self, tx: Tx, bundle: dict[str, Any], base: str, prefer: str | None
    ) -> dict[str, Any]:
        """A transaction from the REST door: order graphs in it go through the order hook."""
        hook = self.order_hook
        if hook is None:
            return self.transaction(tx, bundle, base, prefer)
        issues = hook.before(tx, bundle)
        response = self.transaction(tx, bundle, base, prefer)
        issues += hook.after(tx, bundle, response)
        if issues:
            response["issues"] = outcome(*issues)
        return response

    def single_write(
        self,
        tx: Tx,
        url: str,
        method: str,
        resource: dict[str, Any],
        write: Callable[[Tx, dict[str, Any]], WriteResult],
        if_none_exist: str | None = None,
    ) -> WriteResult:
        """A REST create/update of one resource (``url`` as a transaction entry would name it).

        An order-graph resource goes through the order hook like a one-entry transaction:
        completion before ``write`` (which keeps the REST semantics: conditional forms,
        If-Match), the worklist check after it; the hook's issues join the write's warnings
        and the answer shows the resource as stored last (the check may mark the Task). What
        completion added (a Requested Procedure's study and catalogue steps) is written in the
        same unit of work, its references to the written resource rewritten.
        """
        hook = self.order_hook
        if hook is None or resource.get("resourceType") not in ORDER_GRAPH_TYPES:
            return write(tx, resource)
        request = {"method": method, "url": url}
        if method == "POST" and if_none_exist:  # completion must see the condition: a create
            request["ifNoneExist"] = if_none_exist  # that matches assigns nothing (accession)
        entry: dict[str, Any] = {"resource": resource, "request": request}
        entries: list[dict[str, Any]] = [entry]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        issues = hook.before(tx, bundle)
        result = write(tx, entry["resource"])
        if method == "POST" and not result.created:
            return result  # a conditional create that matched: nothing was written
        response = {"entry": [self._response(result, "", None)]}
        added = entries[1:]  # what completion added (a procedure's study and steps)
        if added:
            s = result.stored
            own = {entry["fullUrl"]: f"{s.res_type}/{s.res_id}"} if entry.get("fullUrl") else {}
            rest = [dict(e, resource=rewrite_references(e["resource"], own)) for e in added]
            more = {"resourceType": "Bundle", "type": "transaction", "entry": rest}
            response["entry"] += self.transaction(tx, more, "", None)["entry"]
        issues += hook.after(tx, bundle, response)
        s = result.stored
        latest = tx.read(s.res_type, s.res_id) or s
        return WriteResult(latest, result.created, [*result.warnings, *issues])

    def _plan(self, tx: Tx, entries: list[_Entry]) -> dict[str, str]:
        mapping: dict[str, str] = {}
        by_criteria: dict[str, str] = {}
        for e in entries:
            rtype, _, rest = e.url.partition("?") if "?" in e.url else e.url.partition("/")
            if e.method == "POST":
                check_type(e.url)
                existing = (
                    self.resources.find_one_locked(tx, e.url, e.if_none_exist)
                    if e.if_none_exist
                    else None
                )
                e.target = (e.url, existing or self.store.new_id())
                if e.if_none_exist:
                    by_criteria[f"{e.url}?{e.if_none_exist}"] = f"{e.url}/{e.target[1]}"
            elif e.method == "PUT" and "?" in e.url:
                existing = self.resources.find_one_locked(tx, rtype, rest)
                e.target = (rtype, existing or (e.resource or {}).get("id") or self.store.new_id())
                by_criteria[e.url] = f"{rtype}/{e.target[1]}"
            elif e.method == "PUT":
                e.target = (rtype, rest.split("/")[0])
            if e.target and e.full_url:
                mapping[e.full_url] = f"{e.target[0]}/{e.target[1]}"
        refs: set[str] = set()
        for e in entries:
            _collect_refs(e.resource, refs)
        for ref in refs:
            if ref in by_criteria:
                mapping[ref] = by_criteria[ref]
                continue
            rtype, _, query = ref.partition("?")
            check_type(rtype)
            found = self.resources.find_one(tx, rtype, query)
            if found is None:
                raise PreconditionFailed(f"conditional reference {ref} matches no resource")
            mapping[ref] = f"{rtype}/{found}"
        return mapping

    def transaction(
        self, tx: Tx, bundle: dict[str, Any], base: str, prefer: str | None
    ) -> dict[str, Any]:
        entries = _entries(bundle)
        mapping = self._plan(tx, entries)
        results: dict[int, dict[str, Any]] = {}
        for e in sorted(entries, key=lambda x: _ORDER[x.method]):
            if e.resource is not None:
                e.resource = rewrite_references(e.resource, mapping)
            try:
                results[e.index] = self._run(tx, e, base, prefer)
            except FhirMwlError as err:
                _locate_in_entry(err, e)
                raise
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [results[i] for i in sorted(results)],
        }

    def _run(self, tx: Tx, e: _Entry, base: str, prefer: str | None) -> dict[str, Any]:
        svc = self.resources
        if e.method == "GET" or e.method == "HEAD":
            return self._get(tx, e.url, base)
        if e.method == "DELETE":
            rtype, _, rest = e.url.partition("?") if "?" in e.url else e.url.partition("/")
            ids = svc.find(tx, rtype, rest) if "?" in e.url else [rest]
            for res_id in ids:
                svc.delete(tx, rtype, res_id, e.if_match)
            return {"response": {"status": "204 No Content"}}
        if e.resource is None:
            raise BadRequest(f"{e.method} entry needs a resource")
        if e.method == "PATCH":
            raise BadRequest("PATCH is not supported in Bundles")
        return self._response(self._write_entry(tx, e, e.resource), base, prefer)

    def _write_entry(self, tx: Tx, e: _Entry, resource: dict[str, Any]) -> WriteResult:
        """The POST or PUT of a planned entry (``e.target`` set by ``_plan``)."""
        assert e.target is not None
        rtype, res_id = e.target
        if e.method == "POST":
            existing = tx.read(rtype, res_id) if e.if_none_exist else None
            if existing is not None:
                return WriteResult(existing, False)
            body = {k: v for k, v in resource.items() if k != "id"}
            warnings = self.resources.prepare(tx, rtype, body, None)
            return WriteResult(tx.create(rtype, body, res_id, fresh=True), True, warnings)
        return self.resources.update(tx, rtype, res_id, resource, e.if_match)

    def _get(self, tx: Tx, url: str, base: str) -> dict[str, Any]:
        parts = urlsplit(url)
        segments = parts.path.split("/")
        if len(segments) == 1:
            check_type(segments[0])
            result = search_bundle(tx, segments[0], parse_qsl(parts.query), base, False)
            return {"resource": result, "response": {"status": "200 OK"}}
        if len(segments) == 2:
            stored = self.resources.read(tx, segments[0], segments[1])
            return {
                "resource": stored.resource(),
                "response": {"status": "200 OK", "etag": stored.etag},
            }
        raise NotFound(f"GET {url} is not supported inside a Bundle")

    @staticmethod
    def _response(result: WriteResult, base: str, prefer: str | None) -> dict[str, Any]:
        s: Stored = result.stored
        response: dict[str, Any] = {
            "status": "201 Created" if result.created else "200 OK",
            "location": f"{s.res_type}/{s.res_id}/_history/{s.version}",
            "etag": s.etag,
            "lastModified": s.last_updated,
        }
        if result.warnings:
            response["outcome"] = outcome(*result.warnings)
        entry: dict[str, Any] = {"fullUrl": f"{base}/{s.res_type}/{s.res_id}", "response": response}
        if prefer == "representation":
            entry["resource"] = s.resource()
        return entry

    # ---- batch -------------------------------------------------------------------------
    def batch(self, bundle: dict[str, Any], base: str, prefer: str | None) -> dict[str, Any]:
        out = []
        for e in _entries(bundle):
            try:
                with self.store.write() as tx:
                    if e.full_url and e.full_url.startswith("urn:uuid:"):
                        e.full_url = None
                    self._plan(tx, [e])
                    out.append(self._batch_entry(tx, e, base, prefer))
            except FhirMwlError as err:
                out.append(
                    {"response": {"status": str(err.http_status), "outcome": from_error(err)}}
                )
        return {"resourceType": "Bundle", "type": "batch-response", "entry": out}

    def _batch_entry(self, tx: Tx, e: _Entry, base: str, prefer: str | None) -> dict[str, Any]:
        """One batch entry; an order-graph write takes the order pipeline, as a REST write."""
        res = e.resource
        if e.method not in ("POST", "PUT") or (res or {}).get("resourceType") not in (
            ORDER_GRAPH_TYPES
        ):
            return self._run(tx, e, base, prefer)
        assert res is not None

        def write(t: Tx, body: dict[str, Any]) -> WriteResult:
            return self._write_entry(t, e, body)

        result = self.single_write(tx, e.url, e.method, res, write, e.if_none_exist)
        return self._response(result, base, prefer)
