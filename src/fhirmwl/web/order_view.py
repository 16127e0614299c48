"""The order page's model: the order graph, its history, its HL7 messages and, per step, the
worklist item exactly as a modality receives it — or why there is none.

The graph comes from the order service's ``load_order``; the item from the worklist index
(``StoreWorklistSource.item``, the code behind ``fhirmwl mwl show``); "is it on the worklist"
is answered by running a C-FIND query for the step's SPS ID through the same source and
matcher (so worklist retention counts), and "why not" by the indexer's own item builder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from fhirmwl.fhir import model
from fhirmwl.fhir.references import reference_id
from fhirmwl.services.ingest_v2 import log as v2log
from fhirmwl.services.orders.graph import OrderGraph, load_order
from fhirmwl.store import Stored, Tx
from fhirmwl.web.feedback_view import (
    OutboundRow,
    PerformedRow,
    concept_text,
    order_outbound,
    performed_steps,
)
from fhirmwl.web.render import person_name
from fhirmwl.worklist.query import WorklistQuery

SPS = "ScheduledProcedureStepSequence"
MAX_MESSAGES = 50
LOG_SCAN = 100_000  # newest message log rows searched for an order's messages (a LIKE scan)


@dataclass(frozen=True)
class DicomRow:
    depth: int
    tag: str
    keyword: str
    vr: str
    value: str


def dicom_rows(ds: Dataset, depth: int = 0) -> list[DicomRow]:
    """Every element of ``ds`` (sequences expanded, items numbered) for a tag table."""
    rows: list[DicomRow] = []
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            rows.append(DicomRow(depth, tag, elem.keyword, "SQ", f"{len(elem.value)} item(s)"))
            for i, item in enumerate(elem.value, start=1):
                rows.append(DicomRow(depth + 1, "", f"item {i}", "", ""))
                rows.extend(dicom_rows(item, depth + 2))
            continue
        value = elem.value
        if isinstance(value, bytes):
            text = f"<{len(value)} bytes>"
        elif isinstance(value, list | tuple):
            text = "\\".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        rows.append(DicomRow(depth, tag, elem.keyword, elem.VR, text))
    return rows


@dataclass
class Entry:
    rtype: str
    rid: str
    version: int
    last_updated: str
    status: str
    summary: str
    json_text: str


@dataclass
class StepView:
    task_id: str
    version: int
    status: str
    start: str  # local wall clock, "YYYY-MM-DDTHH:MM" (datetime-local input)
    station: str
    modality: str
    description: str
    on_worklist: bool
    reason: str | None
    item: list[DicomRow] = field(default_factory=list)
    status_reason: str = ""  # Task.statusReason (e.g. an MPPS discontinuation reason)


@dataclass
class HistoryRow:
    when: str
    rtype: str
    rid: str
    version: int
    method: str
    status: str


@dataclass
class OrderView:
    isr_id: str
    fingerprint: str
    isr_version: int
    status: str
    accession: str
    placer: str
    patient: str
    patient_id: str
    entries: list[Entry]
    steps: list[StepView]
    history: list[HistoryRow]
    messages: list[v2log.LogRecord]
    access: list[AccessRow] = field(default_factory=list)  # the patient's audit trail, newest first
    performed: list[PerformedRow] = field(default_factory=list)  # MPPS performed steps
    outbound: list[OutboundRow] = field(default_factory=list)  # outbound HL7 v2 messages


@dataclass(frozen=True)
class AccessRow:
    """One AuditEvent about the order's patient, as the desk lists it (docs/audit.md)."""

    recorded: str
    action: str
    event: str
    agent: str
    network: str
    outcome: str


def patient_access(tx: Tx, patient_id: str, limit: int = 25) -> list[AccessRow]:
    """Who read or changed this patient's data, newest first (the audit trail)."""
    from fhirmwl.audit import store as audit_store

    rows: list[AccessRow] = []
    for e in audit_store.search(tx.conn, [("patient", f"Patient/{patient_id}")], limit):
        agent = (e.get("agent") or [{}])[0]
        kind = ((e.get("category") or [{}])[0].get("coding") or [{}])[0]
        coding = ((e.get("code") or {}).get("coding") or [{}])[0]
        names = [str(c.get("display") or c.get("code") or "") for c in (kind, coding)]
        rows.append(
            AccessRow(
                recorded=str(e.get("recorded", "")),
                action=str(e.get("action", "")),
                event=" / ".join(dict.fromkeys(n for n in names if n)),
                agent=str(((agent.get("who") or {}).get("identifier") or {}).get("value", "")),
                network=str(agent.get("networkString", "")),
                outcome=str(((e.get("outcome") or {}).get("code") or {}).get("code", "")),
            )
        )
    return rows


def fingerprint(graph: OrderGraph) -> str:
    """Changes whenever any resource of the order graph gets a new version (live notice)."""
    text = ",".join(sorted(f"{s.res_type}/{s.res_id}/{s.version}" for s in graph.all()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def order_fingerprint(services: Any, isr_id: str) -> str:
    with services.store.read() as tx:
        return fingerprint(load_order(tx, isr_id))


def order_of_task(tx: Tx, task: dict[str, Any]) -> str | None:
    """The Imaging Service Request id of a Task (Task → RequestedProcedure → ISR)."""
    rp_id = next((reference_id(b, "ServiceRequest") for b in task.get("basedOn") or []), None)
    rp = tx.read("ServiceRequest", rp_id) if rp_id else None
    if rp is None or rp.content is None:
        return None
    isr_id = next(
        (reference_id(b, "ServiceRequest") for b in rp.resource().get("basedOn") or []), None
    )
    return isr_id or rp_id


def _ident(resource: dict[str, Any], kind: tuple[str, str]) -> str:
    found = model.identifier_of_type(resource, kind)
    return str((found or {}).get("value") or "")


def _summary(res: dict[str, Any]) -> str:
    rtype = res.get("resourceType")
    if rtype == "Patient":
        names = res.get("name") or [{}]
        first = names[0]
        return " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
    if rtype == "Device":
        return ", ".join(str(n.get("value")) for n in res.get("name") or [])
    if rtype in ("ServiceRequest", "Task"):
        code = res.get("code") or {}
        concept = code.get("concept") or code
        codings = concept.get("coding") or [{}]
        return str(concept.get("text") or codings[0].get("display") or "")
    if rtype == "ImagingStudy":
        return ", ".join(str(i.get("value")) for i in res.get("identifier") or [])
    return str((res.get("class") or [{}])[0].get("text", "")) if rtype == "Encounter" else ""


def _entries(graph: OrderGraph) -> list[Entry]:
    out = []
    for s in graph.all():
        res = s.resource()
        out.append(
            Entry(
                s.res_type,
                s.res_id,
                s.version,
                s.last_updated,
                str(res.get("status") or ""),
                _summary(res),
                json.dumps(res, indent=2, ensure_ascii=False),
            )
        )
    return out


def _history(tx: Tx, graph: OrderGraph) -> list[HistoryRow]:
    rows = []
    for s in graph.all():
        for v in tx.history(s.res_type, s.res_id, 20, 0):
            status = str(v.resource().get("status") or "") if v.content else "(deleted)"
            rows.append(
                HistoryRow(v.last_updated, v.res_type, v.res_id, v.version, v.method, status)
            )
    rows.sort(key=lambda r: (r.when, r.rtype, r.version), reverse=True)
    return rows


def order_messages(tx: Tx, refs: list[str]) -> list[v2log.LogRecord]:
    """Logged HL7 messages whose applied changes touched any of ``refs``, or whose refusal names
    one (``ServiceRequest/… cannot be cancelled``), newest first, among the newest ``LOG_SCAN``
    log rows: ``touched`` is JSON text, so this is a scan, kept bounded."""
    refs = refs[:40]
    if not refs:
        return []
    where = " OR ".join("touched LIKE ? OR error LIKE ?" for _ in refs)
    newest = tx.conn.execute("SELECT MAX(id) FROM v2_message_log").fetchone()[0] or 0
    patterns = [p for r in refs for p in (f'%"{r}"%', f"%{r} %")]
    rows = tx.conn.execute(
        f"SELECT id FROM v2_message_log WHERE id > ? AND ({where}) ORDER BY id DESC LIMIT ?",
        (newest - LOG_SCAN, *patterns, MAX_MESSAGES),
    ).fetchall()
    return [rec for (log_id,) in rows if (rec := v2log.get(tx.conn, int(log_id)))]


def _local(value: str | None, tz: ZoneInfo) -> str:
    if not value or "T" not in value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return (parsed.astimezone(tz) if parsed.tzinfo else parsed).strftime("%Y-%m-%dT%H:%M")


def _on_worklist(source: Any, task_id: str, item: Dataset) -> bool:
    """Would a C-FIND for this step's SPS ID return it (retention and matcher included)?"""
    sps_id = str((item.get(SPS) or [Dataset()])[0].get("ScheduledProcedureStepID", ""))
    query = WorklistQuery.from_keywords({f"{SPS}.ScheduledProcedureStepID": sps_id})
    return any(tid == task_id for tid, _ in source.find_with_ids(query))


def _devices(graph: OrderGraph) -> dict[str, str]:
    """``Device/id`` → its names, for steps without a worklist item."""
    return {
        f"Device/{s.res_id}": _summary(s.resource()) for s in graph.others if s.res_type == "Device"
    }


def _step(
    stored: Stored, item: Dataset | None, reason: str | None, tz: ZoneInfo, devices: dict[str, str]
) -> StepView:
    task = stored.resource()
    sps = (item.get(SPS) or [Dataset()])[0] if item is not None else Dataset()
    station = sps.get("ScheduledStationAETitle", "") or ", ".join(
        devices.get(str((p.get("reference") or {}).get("reference")), "")
        for p in task.get("requestedPerformer") or []
    ).strip(", ")
    return StepView(
        task_id=stored.res_id,
        version=stored.version,
        status=str(task.get("status") or ""),
        start=_local((task.get("requestedPeriod") or {}).get("start"), tz),
        station="\\".join(station) if isinstance(station, list | tuple) else str(station),
        modality=str(sps.get("Modality", "") or ""),
        description=_summary(task),
        on_worklist=reason is None,
        reason=reason,
        item=dicom_rows(item) if item is not None else [],
        status_reason=concept_text((task.get("statusReason") or {}).get("concept")),
    )


def _reasons(services: Any, graph: OrderGraph, items: dict[str, Dataset | None]) -> dict[str, str]:
    """Why each step is not returned by a C-FIND (steps that are have no entry)."""
    source = services.worklist()
    reasons: dict[str, str] = {}
    days = services.settings.worklist_retention_days
    for task_id, item in items.items():
        if item is not None and not _on_worklist(source, task_id, item):
            reasons[task_id] = (
                f"scheduled more than {days} day(s) ago: hidden by worklist_retention_days"
                if days > 0
                else "the index holds an item, but a C-FIND for its SPS ID does not return it"
            )
    missing = [t for t in graph.tasks if items[t.res_id] is None]
    if missing:
        with services.store.read() as tx:
            indexer = services.worklist_indexer
            for t in missing:
                result = indexer.item_result(tx, t.resource())
                reasons[t.res_id] = result.reason or "not in the worklist index (run reindex)"
    return reasons


def load_order_view(services: Any, isr_id: str) -> OrderView:
    """The page model; the worklist checks run after the graph's read transaction (the worklist
    source opens its own)."""
    with services.store.read() as tx:
        graph = load_order(tx, isr_id)
        entries, history = _entries(graph), _history(tx, graph)
        refs = [f"{s.res_type}/{s.res_id}" for s in [graph.isr, *graph.rps, *graph.tasks]]
        messages = order_messages(tx, refs)
        patient_ids = [s.res_id for s in graph.others if s.res_type == "Patient"]
        access = patient_access(tx, patient_ids[0]) if patient_ids else []
        performed, outbound = performed_steps(tx, graph), order_outbound(tx, isr_id)
    source = services.worklist()
    items: dict[str, Dataset | None] = {t.res_id: source.item(t.res_id) for t in graph.tasks}
    reasons = _reasons(services, graph, items)
    tz = ZoneInfo(services.settings.timezone)
    devices = _devices(graph)
    steps = [_step(t, items[t.res_id], reasons.get(t.res_id), tz, devices) for t in graph.tasks]
    isr = graph.isr.resource()
    patient = next((s.resource() for s in graph.others if s.res_type == "Patient"), {})
    item_name = next((r.value for st in steps for r in st.item if r.keyword == "PatientName"), "")
    return OrderView(
        isr_id=isr_id,
        fingerprint=fingerprint(graph),
        isr_version=graph.isr.version,
        status=str(isr.get("status") or ""),
        accession=_ident(isr, model.ACSN),
        placer=_ident(isr, model.PLAC),
        patient=person_name(item_name) or _summary(patient),
        patient_id=str(((patient.get("identifier") or [{}])[0]).get("value") or ""),
        entries=entries,
        steps=steps,
        history=history,
        messages=messages,
        access=access,
        performed=performed,
        outbound=outbound,
    )
