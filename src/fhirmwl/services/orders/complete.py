"""Completing an incoming order Bundle with what the broker assigns, before it is validated.

A RIS need not send what the MWL service owns: accession number, Requested Procedure IDs, SPS
IDs, Study Instance UIDs and the Scheduled Procedure Steps themselves. ``complete_order`` adds
them to the request Bundle (as new entries with ``urn:uuid:`` fullUrls, tagged ``meta.tag``
``urn:fhirmwl:generated``), so that the profiles check the graph that will be stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fhirmwl.errors import Unprocessable
from fhirmwl.fhir import model
from fhirmwl.fhir.outcome import issue
from fhirmwl.mapping.fhir_to_dicom.graph import based_only_on
from fhirmwl.services.orders import ids
from fhirmwl.services.orders.catalogue import Procedure
from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.orders.scheduling import catalogue_task
from fhirmwl.services.orders.steps import Finding, complete_step
from fhirmwl.store import Tx

IMAGING = {"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}


@dataclass
class ParsedOrder:
    bundle: dict[str, Any]
    isr: dict[str, Any] | None = None  # entry
    rps: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    studies: list[dict[str, Any]] = field(default_factory=list)
    stored_rps: set[int] = field(default_factory=set)  # id() of RP entries already stored

    def add(self, entry: dict[str, Any]) -> None:
        self.bundle.setdefault("entry", []).append(entry)


def keys(entry: dict[str, Any]) -> set[str]:
    res = entry.get("resource") or {}
    out = {entry.get("fullUrl") or ""}
    if res.get("id"):
        out.add(f"{res.get('resourceType')}/{res['id']}")
    url = (entry.get("request") or {}).get("url") or ""
    if "/" in url and "?" not in url:
        out.add(url.lstrip("/"))
    return out - {""}


def refs_to(resource: dict[str, Any], targets: set[str]) -> bool:
    return any((b.get("reference") or "") in targets for b in resource.get("basedOn") or [])


def ref_of(entry: dict[str, Any]) -> str:
    return str(entry["fullUrl"])


def tag(resource: dict[str, Any], code: str, display: str) -> None:
    meta = resource.setdefault("meta", {})
    meta.setdefault("tag", []).append(model.generated_tag(code, display))


def parse_order(bundle: dict[str, Any], isr_ref: str | None = None) -> ParsedOrder:
    """Sort the entries into ISR / RPs / Tasks / studies; give every entry a fullUrl."""
    parsed = ParsedOrder(bundle)
    entries = [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    for e in entries:
        if "fullUrl" not in e:  # (not ``setdefault``: that draws a uuid for every entry)
            e["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    srs = [e for e in entries if e["resource"].get("resourceType") == "ServiceRequest"]
    sr_keys = set().union(*(keys(e) for e in srs)) if srs else set()
    if isr_ref:
        sr_keys.add(isr_ref)
    for e in srs:
        res = e["resource"]
        is_rp = model.PROFILE_RP in (res.get("meta") or {}).get("profile", []) or refs_to(
            res, sr_keys
        )
        if is_rp:
            parsed.rps.append(e)
        elif parsed.isr is None and isr_ref is None:
            parsed.isr = e
        else:
            raise Unprocessable(
                "an order Bundle holds exactly one Imaging Service Request",
                expression=f"Bundle.entry fullUrl {e['fullUrl']}",
            )
    parsed.tasks = [e for e in entries if e["resource"].get("resourceType") == "Task"]
    parsed.studies = [e for e in entries if e["resource"].get("resourceType") == "ImagingStudy"]
    return parsed


def complete_isr(tx: Tx, isr: dict[str, Any], ctx: OrderContext) -> str:
    """Default status/intent/category; assign the accession number. Returns it."""
    isr.setdefault("status", "active")
    isr.setdefault("intent", "order")
    isr.setdefault("category", [{"coding": [dict(IMAGING)]}])
    acsn = model.identifier_of_type(isr, model.ACSN)
    if acsn and acsn.get("value"):
        return str(acsn["value"])
    s = ctx.settings
    value = ids.assign_accession(tx, s.accession_pattern, s.accession_system, ctx.clock())
    isr.setdefault("identifier", []).append(
        model.typed_identifier(model.ACSN, value, s.accession_system or None, "Accession ID")
    )
    tag(isr, "accession-number", f"pattern {s.accession_pattern}")
    return value


def _complete_rp(rp: dict[str, Any], isr: dict[str, Any], rpid: str, ctx: OrderContext) -> str:
    rp.setdefault("status", "active")
    rp.setdefault("intent", "order")
    if "subject" not in rp and "subject" in isr:
        rp["subject"] = dict(isr["subject"])
    ident = model.identifier_of_type(rp, model.RPID)
    if ident and ident.get("value"):
        return str(ident["value"])
    for other in rp.get("identifier") or []:  # typed by text only ("Requested Procedure ID")
        text = str((other.get("type") or {}).get("text", "")).lower()
        if other.get("value") and "requested procedure" in text:
            coding = {"system": model.RPID[0], "code": model.RPID[1]}
            other["type"] = dict(other["type"], coding=[coding])
            return str(other["value"])
    system = ctx.settings.rpid_system or None
    rp.setdefault("identifier", []).append(
        model.typed_identifier(model.RPID, rpid, system, "Requested Procedure ID")
    )
    tag(rp, "requested-procedure-id", "accession number + index")
    return rpid


def _study(rp_entry: dict[str, Any], isr_ref: str, ctx: OrderContext) -> dict[str, Any]:
    rp = rp_entry["resource"]
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "meta": {"profile": [model.PROFILE_STUDY]},
        "identifier": [{"system": model.DICOM_UID_SYSTEM, "value": f"urn:oid:{ctx.uid_factory()}"}],
        "status": "registered",
        "basedOn": [{"reference": ref_of(rp_entry)}, {"reference": isr_ref}],
        "subject": dict(rp.get("subject") or {}),
    }
    if rp.get("encounter"):
        study["encounter"] = dict(rp["encounter"])
    tag(study, "study-instance-uid", "uid_root" if ctx.settings else "2.25")
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": study,
        "request": {"method": "POST", "url": "ImagingStudy"},
    }


def complete_task(
    tx: Tx, task: dict[str, Any], rp: dict[str, Any], spsid: str, ctx: OrderContext
) -> None:
    task.setdefault("status", "requested")
    task.setdefault("intent", "plan")
    if "for" not in task and rp.get("subject"):
        task["for"] = dict(rp["subject"])
    if "encounter" not in task and rp.get("encounter"):
        task["encounter"] = dict(rp["encounter"])
    ident = model.identifier_of_type(task, model.SPSID)
    if ident and ident.get("value"):
        return
    system = ctx.settings.spsid_system
    value, n = spsid, 1
    while tx.find_unique(model.SPSID[1], system, value) is not None:
        n += 1
        value = f"{spsid[:13]}~{n}"
    task.setdefault("identifier", []).append(
        model.typed_identifier(model.SPSID, value, system or None, "Scheduled Procedure Step ID")
    )
    tag(task, "sps-id", "requested procedure id + index")


def _procedure_for(
    rp: dict[str, Any], ctx: OrderContext, where: str, findings: list[Finding] | None, order: str
) -> Procedure | None:
    """The catalogue entry; when none: 422 (``findings`` is None) or a not-schedulable finding."""
    codings = ((rp.get("code") or {}).get("concept") or {}).get("coding") or []
    found = ctx.catalogue.lookup(codings)
    if found is None:
        codes = ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings) or "none"
        msg = (
            f"{where}: procedure code {codes} has no Task in the order and is not in the "
            f"procedure catalogue {ctx.catalogue.source}"
        )
        if findings is None:
            raise Unprocessable(msg, issues=[issue("error", "not-found", msg, f"{where}.code")])
        text = f"{msg}; stored, not scheduled"
        findings.append(Finding("procedure", text, "ServiceRequest.code", order, "101"))
    return found


def complete_procedures(
    tx: Tx,
    parsed: ParsedOrder,
    isr: dict[str, Any],
    isr_ref: str,
    accession: str,
    ctx: OrderContext,
    first_index: int = 1,
    *,
    findings: list[Finding] | None = None,
    strict: bool = True,
) -> None:
    """RP ids, one ImagingStudy per RP, Tasks from the catalogue, SPS ids and step defaults.

    ``strict``: a Requested Procedure without a Task and not in the catalogue is refused (422);
    otherwise it is stored and reported in ``findings`` as not schedulable.
    """
    now: datetime = ctx.clock()
    found: list[Finding] = [] if findings is None else findings
    stations: dict[str, str] = {}  # AE title → reference, shared by the order's Tasks
    # A study based on the ISR alone (the guide's example, I-14) serves the first RP without one.
    isr_only = [s for s in parsed.studies if based_only_on(s["resource"], {isr_ref})]
    for i, rp_entry in enumerate(parsed.rps, start=first_index):
        rp = rp_entry["resource"]
        rpid = _complete_rp(rp, isr, ids.rp_id(accession, i), ctx)
        rp_keys = keys(rp_entry)
        own = [s["resource"] for s in parsed.studies if refs_to(s["resource"], rp_keys)]
        if not own and isr_only:  # a study based on the order only serves this RP
            own = [isr_only.pop(0)["resource"]]
            for res in own:
                res.setdefault("basedOn", []).insert(0, {"reference": ref_of(rp_entry)})
        stored = id(rp_entry) in parsed.stored_rps  # its study and steps are in the store
        if not own and not stored:
            study = _study(rp_entry, isr_ref, ctx)
            parsed.studies.append(study)
            parsed.add(study)
        for res in own:
            if not any(
                i.get("system") == model.DICOM_UID_SYSTEM for i in res.get("identifier") or []
            ):
                uid = {"system": model.DICOM_UID_SYSTEM, "value": f"urn:oid:{ctx.uid_factory()}"}
                res.setdefault("identifier", []).append(uid)
                tag(res, "study-instance-uid", "uid_root" if ctx.settings else "2.25")
        tasks = [t for t in parsed.tasks if refs_to(t["resource"], rp_keys)]
        if not tasks and not stored:
            where = f"ServiceRequest {rp_entry['fullUrl']}"
            proc = _procedure_for(rp, ctx, where, None if strict else found, isr_ref)
            if proc is None:
                continue
            task_entry = catalogue_task(tx, ctx, rp_entry, proc, stations, parsed.add, now)
            parsed.tasks.append(task_entry)
            parsed.add(task_entry)
            tasks = [task_entry]
        for j, t in enumerate(tasks, start=1):
            complete_step(t["resource"], rp, ctx, found, isr_ref)
            complete_task(tx, t["resource"], rp, ids.sps_id(rpid, j), ctx)


def default_start(rp: dict[str, Any], now: datetime, slot_minutes: int) -> datetime:
    """The requested time of the RP, else the next slot boundary from now."""
    text = rp.get("occurrenceDateTime") or (rp.get("occurrencePeriod") or {}).get("start")
    if isinstance(text, str) and "T" in text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    slot = max(slot_minutes, 1)
    base = now.replace(second=0, microsecond=0)
    return base + timedelta(minutes=slot - base.minute % slot)
