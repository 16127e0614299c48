"""Order-graph resources written one at a time: an order, a procedure or a step, a changed order.

A transaction that carries a whole order graph is completed by ``pipeline.complete_graphs``. A
write of one resource (``POST /Task``, ``PUT /ServiceRequest/{id}``, or a transaction with a
single entry) carries only part of a graph whose rest is already stored. The same rules apply
to it here, reading the stored part instead of the request: an Imaging Service Request created
on its own gets its accession number (``complete.complete_isr``); a Requested Procedure created
for a stored order gets its Requested Procedure ID (the order's accession number and the next
running number), its ImagingStudy and, from the catalogue, its steps
(``complete.complete_procedures``); a Scheduled Procedure Step based on a stored Requested
Procedure gets the step defaults (``steps.complete_step``) and its SPS ID
(``complete.complete_task``). After the write every Task whose worklist item the written
ServiceRequest or ImagingStudy feeds is checked against the worklist like a written Task.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.references import split_reference
from fhirmwl.services.orders import ids
from fhirmwl.services.orders.complete import (
    IMAGING,
    ParsedOrder,
    complete_isr,
    complete_procedures,
    complete_task,
    keys,
    refs_to,
)
from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.orders.steps import Finding, complete_step
from fhirmwl.services.worklist.graph import affected_tasks
from fhirmwl.store import Tx


def _stored_sr(tx: Tx, reference: str, ctx: OrderContext) -> dict[str, Any] | None:
    """The stored ServiceRequest a (literal or conditional) reference names, else None."""
    if reference.startswith("ServiceRequest?"):
        found = ctx.resources.find(tx, "ServiceRequest", reference.partition("?")[2])
        key: tuple[str, str] | None = ("ServiceRequest", found[0]) if len(found) == 1 else None
    else:
        key = split_reference(reference)
    if key is None or key[0] != "ServiceRequest":
        return None
    stored = tx.read(*key)
    return stored.resource() if stored is not None and not stored.deleted else None


def _is_rp(resource: dict[str, Any]) -> bool:
    profiles = (resource.get("meta") or {}).get("profile") or []
    based = [str(b.get("reference") or "") for b in resource.get("basedOn") or []]
    return model.PROFILE_RP in profiles or any(r.startswith("ServiceRequest") for r in based)


def _rp_id(rp: dict[str, Any]) -> str | None:
    ident = model.identifier_of_type(rp, model.RPID)
    if ident is None:  # typed by text only, as the guide's example does
        ident = next(
            (
                i
                for i in rp.get("identifier") or []
                if "requested procedure" in str((i.get("type") or {}).get("text", "")).lower()
            ),
            None,
        )
    value = (ident or {}).get("value")
    return str(value) if value else None


def complete_lone_steps(tx: Tx, bundle: dict[str, Any], ctx: OrderContext) -> list[Finding]:
    """Complete every Task of ``bundle`` whose Requested Procedure is stored, not in the Bundle.

    The order a finding names is the Requested Procedure's own order (its ``basedOn``).
    """
    entries = [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    in_bundle: set[str] = set()
    for e in entries:
        if e["resource"].get("resourceType") == "ServiceRequest":
            in_bundle |= keys(e)
    findings: list[Finding] = []
    for e in entries:
        task = e["resource"]
        if task.get("resourceType") != "Task" or refs_to(task, in_bundle):
            continue
        for based in task.get("basedOn") or []:
            rp = _stored_sr(tx, str(based.get("reference") or ""), ctx)
            if rp is None or not _is_rp(rp):
                continue
            order = next((str(b.get("reference")) for b in rp.get("basedOn") or []), "")
            complete_step(task, rp, ctx, findings, order)
            rpid = _rp_id(rp)
            if rpid is not None:
                steps = tx.references_to("ServiceRequest", [rp["id"]], "Task", "based-on")
                index = len({i for _, i in steps} - {task.get("id")}) + 1
                complete_task(tx, task, rp, ids.sps_id(rpid, index), ctx)
            break
    return findings


def tasks_fed_by(tx: Tx, response: dict[str, Any]) -> list[str]:
    """Ids of the Tasks whose worklist item a written ServiceRequest or ImagingStudy feeds."""
    written = []
    for entry in response.get("entry") or []:
        location = str((entry.get("response") or {}).get("location") or "")
        rtype, _, rest = location.partition("/")
        if rtype in ("ServiceRequest", "ImagingStudy") and rest:
            written.append((rtype, rest.split("/")[0]))
    if not written:
        return []
    return affected_tasks(tx, written)


def complete_lone_request(
    tx: Tx, parsed: ParsedOrder, ctx: OrderContext, findings: list[Finding]
) -> None:
    """Complete a ServiceRequest the Bundle creates without its Requested Procedures.

    ``parsed`` is what ``pipeline.split_orders`` found: a ServiceRequest with no Requested
    Procedure in the Bundle. Based on a stored Imaging Service Request, it is a Requested
    Procedure added to that order; otherwise, when it is an imaging order (the guide's profile
    or the imaging category), it is an order whose procedures follow in later writes. An update
    of a stored resource is left as sent (its identifiers were assigned when it was created).
    """
    entry = parsed.isr
    assert entry is not None
    res = entry["resource"]
    if not _creates(tx, entry, ctx):
        return
    order = next(
        (
            sr
            for based in res.get("basedOn") or []
            if (sr := _stored_sr(tx, str(based.get("reference") or ""), ctx)) is not None
            and not _is_rp(sr)
        ),
        None,
    )
    if order is not None:
        _complete_lone_procedure(tx, parsed, order, ctx, findings)
    elif not _is_rp(res) and _is_imaging_order(res):
        complete_isr(tx, res, ctx)


def _complete_lone_procedure(
    tx: Tx,
    parsed: ParsedOrder,
    isr: dict[str, Any],
    ctx: OrderContext,
    findings: list[Finding],
) -> None:
    """A Requested Procedure for the stored order ``isr``, with the Bundle's steps and study."""
    assert parsed.isr is not None
    acsn = model.identifier_of_type(isr, model.ACSN)
    accession = str((acsn or {}).get("value") or "")
    if not accession:
        return  # no accession to derive the Requested Procedure ID from: stored as sent
    isr_ref = f"ServiceRequest/{isr['id']}"
    # The order's row lock serialises procedures added to it concurrently (PostgreSQL: each
    # would count the same stored siblings and take the same number); taken before counting.
    tx.read("ServiceRequest", isr["id"], for_update=True)
    siblings = tx.references_to("ServiceRequest", [isr["id"]], "ServiceRequest", "based-on")
    procedure = ParsedOrder(parsed.bundle, {"fullUrl": isr_ref, "resource": isr})
    procedure.rps = [parsed.isr]
    rp_keys = keys(parsed.isr)
    for e in parsed.bundle.get("entry") or []:
        res = e.get("resource")
        if not isinstance(res, dict) or not refs_to(res, rp_keys):
            continue
        if res.get("resourceType") == "Task":
            procedure.tasks.append(e)
        elif res.get("resourceType") == "ImagingStudy":
            procedure.studies.append(e)
    # (the Bundle's other procedures for this order, completed before this one, count too)
    in_bundle = [
        r
        for e in parsed.bundle.get("entry") or []
        if isinstance(r := e.get("resource"), dict)
        and r is not parsed.isr["resource"]
        and r.get("resourceType") == "ServiceRequest"
    ]
    first = _next_rp_number(tx, accession, sorted({i for _, i in siblings}), in_bundle)
    complete_procedures(
        tx, procedure, isr, isr_ref, accession, ctx, first, findings=findings, strict=False
    )


def _next_rp_number(
    tx: Tx, accession: str, siblings: list[str], in_bundle: list[dict[str, Any]]
) -> int:
    """The running number of a new Requested Procedure of the order: after the highest one its
    stored procedures and the Bundle's other ServiceRequests carry, at least after the stored
    ones' count. (Their count alone, once one of them was deleted, gives the new one the number
    of a procedure still stored; two procedures of one Bundle would get the same number.)"""
    prefix = ids.rp_id(accession, 0)[:-1]  # "<accession>."
    highest = len(siblings)
    resources = list(in_bundle)
    for sibling in siblings:
        stored = tx.read("ServiceRequest", sibling)
        if stored is not None and not stored.deleted:
            resources.append(stored.resource())
    for resource in resources:
        ident = model.identifier_of_type(resource, model.RPID)
        value = str((ident or {}).get("value") or "")
        if value.startswith(prefix) and value[len(prefix) :].isdigit():
            highest = max(highest, int(value[len(prefix) :]))
    return highest + 1


def _creates(tx: Tx, entry: dict[str, Any], ctx: OrderContext) -> bool:
    """True when the entry creates its resource (POST, or a PUT or conditional create that
    finds nothing stored)."""
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    if method == "POST":
        condition = str(request.get("ifNoneExist") or "")
        return not condition or not ctx.resources.find(tx, "ServiceRequest", condition)
    if method != "PUT":
        return False
    url = str(request.get("url", "")).lstrip("/")
    rtype, _, rest = url.partition("?")
    if rest:
        return not ctx.resources.find(tx, rtype, rest)
    res_type, _, res_id = rtype.partition("/")
    return bool(res_id) and tx.read(res_type, res_id) is None


def _is_imaging_order(resource: dict[str, Any]) -> bool:
    profiles = (resource.get("meta") or {}).get("profile") or []
    if model.PROFILE_ISR in profiles:
        return True
    return any(
        c.get("system") == IMAGING["system"] and c.get("code") == IMAGING["code"]
        for category in resource.get("category") or []
        for c in category.get("coding") or []
    )
