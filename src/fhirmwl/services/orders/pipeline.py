"""The one order pipeline every door calls: complete, store, and say what will not happen.

Doors (HL7 v2 order control, ``$create-order``/``$update-order``, plain FHIR transactions that
carry an order graph) translate their input into an order Bundle and hand it here. The pipeline
completes what the broker owns with one set of rules (``complete_graphs``: accession number,
Requested Procedure ID, Study Instance UID, SPS ID, Tasks from the catalogue, modality, start
time), the transaction processor stores it (validation, status guard, worklist index and outbox
are store and resource hooks), and ``check_worklist`` then asks the worklist index, inside the
same unit of work, whether every live step is on the worklist. A step that is stored but cannot
be scheduled is recorded on its Task (``businessStatus`` ``not-schedulable`` with the reason,
searchable as ``Task?business-status=urn:fhirmwl:schedulability|not-schedulable``) and returned
as a ``Finding``, which each door turns into its own warning: an ERR segment with severity W in
an ``AA``, an OperationOutcome warning in a ``2xx``. A value the broker replaced (a modality that
is not a DICOM one, a missing start time) is a ``Finding`` too.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.services.orders.complete import (
    ParsedOrder,
    complete_isr,
    complete_procedures,
    keys,
    ref_of,
    refs_to,
)
from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.orders.single import (
    complete_lone_request,
    complete_lone_steps,
    tasks_fed_by,
)
from fhirmwl.services.orders.status import TERMINAL
from fhirmwl.services.orders.steps import Finding
from fhirmwl.services.orders.survivor import attach_to_survivors
from fhirmwl.store import Tx

SCHEDULABILITY = "urn:fhirmwl:schedulability"
NOT_SCHEDULABLE = "not-schedulable"
_GRAPH_TYPES = frozenset({"ServiceRequest", "Task"})
PLACEHOLDER = "policy generate"  # display of the v2 mapping's tag on an identifier it derived
_ID_KINDS = {"accession-number": model.ACSN, "requested-procedure-id": model.RPID}
_ID_KINDS["sps-id"] = model.SPSID


def is_order_bundle(bundle: dict[str, Any]) -> bool:
    """True when a transaction writes a ServiceRequest or a Task (it touches an order graph)."""
    return any(
        (e.get("resource") or {}).get("resourceType") in _GRAPH_TYPES
        for e in bundle.get("entry") or []
    )


def split_orders(bundle: dict[str, Any]) -> list[ParsedOrder]:
    """Every Imaging Service Request of a transaction with its RPs, Tasks and studies."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    for e in entries:
        if "fullUrl" not in e:  # (not ``setdefault``: that draws a uuid for every entry)
            e["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    srs = [e for e in entries if e["resource"].get("resourceType") == "ServiceRequest"]
    sr_keys = set().union(*(keys(e) for e in srs)) if srs else set()

    def is_rp(e: dict[str, Any]) -> bool:
        res = e["resource"]
        profiles = (res.get("meta") or {}).get("profile") or []
        return model.PROFILE_RP in profiles or refs_to(res, sr_keys - keys(e))

    out: list[ParsedOrder] = []
    for isr in (e for e in srs if not is_rp(e)):
        parsed = ParsedOrder(bundle, isr)
        isr_keys = keys(isr)
        parsed.rps = [e for e in srs if e is not isr and refs_to(e["resource"], isr_keys)]
        rp_keys = set().union(*(keys(e) for e in parsed.rps)) if parsed.rps else set()
        for e in entries:
            rtype, res = e["resource"].get("resourceType"), e["resource"]
            if rtype == "Task" and refs_to(res, rp_keys):
                parsed.tasks.append(e)
            elif rtype == "ImagingStudy" and refs_to(res, rp_keys | isr_keys):
                parsed.studies.append(e)
        out.append(parsed)
    return out


def complete_graphs(
    tx: Tx,
    bundle: dict[str, Any],
    ctx: OrderContext,
    *,
    strict: bool = False,
    new_orders: set[str] | None = None,
) -> list[Finding]:
    """Complete every order graph of ``bundle`` in place; findings for what was replaced.

    ``strict`` (``$create-order``) refuses a Requested Procedure without a Task whose code is
    not in the catalogue; otherwise it is stored and reported as not schedulable.
    ``new_orders``: fullUrls of Imaging Service Requests known to be new orders; identifiers a
    door left as placeholders for them (tagged ``policy generate`` by the v2 mapping) are
    assigned here instead, by the same rules as for every other door.
    """
    findings = attach_to_survivors(tx, bundle, ctx)
    orders = split_orders(bundle)
    in_graphs = {id(e) for parsed in orders if parsed.rps for e in (parsed.isr, *parsed.rps)}
    for entry in bundle.get("entry") or []:
        res = entry.get("resource")
        # A ServiceRequest written without its order or without its procedures:
        lone = id(entry) not in in_graphs and isinstance(res, dict)
        if lone and res.get("resourceType") == "ServiceRequest":
            complete_lone_request(tx, ParsedOrder(bundle, entry), ctx, findings)
    for parsed in orders:
        assert parsed.isr is not None
        isr = parsed.isr["resource"]
        if not parsed.rps:
            continue
        if new_orders is not None and ref_of(parsed.isr) in new_orders:
            for entry in [parsed.isr, *parsed.rps, *parsed.tasks, *parsed.studies]:
                release_placeholders(entry)
        else:
            parsed.stored_rps = {id(e) for e in parsed.rps if _is_stored(tx, e, ctx)}
        accession = complete_isr(tx, isr, ctx)
        complete_procedures(
            tx, parsed, isr, ref_of(parsed.isr), accession, ctx, findings=findings, strict=strict
        )
    return findings


def _is_stored(tx: Tx, entry: dict[str, Any], ctx: OrderContext) -> bool:
    """An RP entry that updates a stored Requested Procedure (its study and steps exist)."""
    request = entry.get("request") or {}
    if str(request.get("method", "")).upper() != "PUT":
        return False
    rtype, _, rest = str(request.get("url", "")).partition("?")
    if rest:
        return bool(ctx.resources.find(tx, rtype, rest))
    res_type, _, res_id = rtype.partition("/")
    return bool(res_id) and tx.read(res_type, res_id) is not None


def release_placeholders(entry: dict[str, Any]) -> None:
    """Drop identifiers tagged as placeholders (v2 policy ``generate``) so completion assigns
    them; a conditional PUT keyed by such a placeholder becomes a POST."""
    res = entry["resource"]
    tags = (res.get("meta") or {}).get("tag") or []
    placeholders = {
        str(t.get("code"))
        for t in tags
        if t.get("system") == model.GENERATED_TAG_SYSTEM and PLACEHOLDER in str(t.get("display"))
    }
    if not placeholders:
        return
    res["meta"]["tag"] = [t for t in tags if str(t.get("code")) not in placeholders]
    res["identifier"] = [
        i
        for i in res.get("identifier") or []
        if not any(_is_kind(i, code) for code in placeholders)
    ]
    if not res["identifier"]:
        del res["identifier"]
    if "?" in str((entry.get("request") or {}).get("url", "")):
        entry["request"] = {"method": "POST", "url": res["resourceType"]}


def _is_kind(identifier: dict[str, Any], code: str) -> bool:
    if code == "study-instance-uid":
        return identifier.get("system") == model.DICOM_UID_SYSTEM
    kind = _ID_KINDS.get(code)
    return kind is not None and model.has_type(identifier, kind)


def written_tasks(response: dict[str, Any]) -> list[str]:
    """Ids of the Tasks a transaction-response Bundle created or updated."""
    out = []
    for entry in response.get("entry") or []:
        location = str((entry.get("response") or {}).get("location") or "")
        if location.startswith("Task/"):
            out.append(location.split("/")[1])
    return out


def check_worklist(
    tx: Tx, task_ids: list[str], ctx: OrderContext, orders: dict[str, str] | None = None
) -> list[Finding]:
    """Index ``task_ids`` now; record and report every live step that is not on the worklist.

    ``orders`` maps Task id → the order reference the findings should name.
    """
    indexer = ctx.indexer
    if indexer is None or not task_ids:
        return []
    findings: list[Finding] = []
    for task_id, (reason, stored) in indexer.index_now(tx, list(dict.fromkeys(task_ids))).items():
        if stored is None or stored.deleted:
            continue
        task = stored.resource()
        live = task.get("status") not in TERMINAL and task.get("status") in ctx.worklist_statuses
        mark = _mark(task.get("businessStatus"), reason if live else None)
        if mark != task.get("businessStatus"):
            changed = {k: v for k, v in task.items() if k != "businessStatus"}
            if mark is not None:
                changed["businessStatus"] = mark
            tx.update("Task", task_id, changed)
        if live and reason:
            text = f"Task/{task_id} is stored but not on the worklist: {reason}"
            where = "Task.businessStatus"
            findings.append(Finding("worklist", text, where, (orders or {}).get(task_id, "")))
    if findings:
        vars(tx)["_worklist_indexed_at"] = len(tx.touched)
    return findings


def _mark(current: dict[str, Any] | None, reason: str | None) -> dict[str, Any] | None:
    ours = any(c.get("system") == SCHEDULABILITY for c in (current or {}).get("coding") or [])
    if current is not None and not ours:
        return current  # the sender's own business status is left alone
    if reason is None:
        return None
    coding = {"system": SCHEDULABILITY, "code": NOT_SCHEDULABLE, "display": "Not schedulable"}
    return {"coding": [coding], "text": reason}


def isr_of_tasks(bundle: dict[str, Any], response: dict[str, Any]) -> dict[str, str]:
    """Task id → fullUrl of its order's ISR in the request Bundle (for locating findings)."""
    out: dict[str, str] = {}
    entries = bundle.get("entry") or []
    results = response.get("entry") or []
    by_url = {}
    for parsed in split_orders(bundle):
        assert parsed.isr is not None
        for t in parsed.tasks:
            by_url[id(t)] = ref_of(parsed.isr)
    for entry, result in zip(entries, results, strict=False):
        location = str((result.get("response") or {}).get("location") or "")
        if location.startswith("Task/") and id(entry) in by_url:
            out[location.split("/")[1]] = by_url[id(entry)]
    return out


class OrderTransactionHook:
    """The plain FHIR door: a transaction that touches an order graph goes through the pipeline.

    ``BundleProcessor.process`` calls ``before`` on the request Bundle (completion) and
    ``after`` on the response (worklist check) inside the transaction's unit of work; the
    returned issues travel back in the response Bundle's ``issues`` (R5). A single-resource
    REST write of an order-graph resource goes through the same two calls as a one-entry
    transaction (``BundleProcessor.single_write``); its issues are the write's warnings.
    """

    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    def before(self, tx: Tx, bundle: dict[str, Any]) -> list[dict[str, Any]]:
        if not is_order_bundle(bundle):
            return []
        findings = complete_graphs(tx, bundle, self.ctx)
        findings += complete_lone_steps(tx, bundle, self.ctx)
        return [f.issue() for f in findings]

    def after(
        self, tx: Tx, bundle: dict[str, Any], response: dict[str, Any]
    ) -> list[dict[str, Any]]:
        tasks = written_tasks(response) + tasks_fed_by(tx, response)
        if not tasks:
            return []
        orders = isr_of_tasks(bundle, response)
        return [f.issue() for f in check_worklist(tx, tasks, self.ctx, orders)]
