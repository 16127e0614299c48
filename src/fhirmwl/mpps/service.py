"""Performed procedure steps in the store: N-CREATE / N-SET as units of work on the order service.

Each MPPS request is one ``Store.write()``: the ``mpps`` row (state and merged attributes, keyed
by the SOP Instance UID so a duplicate N-CREATE fails on the primary key even across processes),
the FHIR ``Procedure`` that records the performed step, the Task status change through
``services.orders.change_step_status`` (the one status guard: illegal transitions are refused and
roll the whole request back) and, on COMPLETED, the series/instance counts on the ImagingStudy.
The worklist index and the notification outbox follow from their write hooks in the same
transaction.

An MPPS whose scheduled step cannot be resolved (unscheduled, or the order is not known yet) is
recorded unmatched; :class:`PendingMatcher` retries the match after every committed change to
an order, by accession number, then by patient (exactly one open step of that modality).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
from pydicom.dataset import Dataset

from fhirmwl.errors import BusinessRuleViolation, DuplicateIdentifier
from fhirmwl.fhir.model import DCM_MODALITY_CODE, DEVICE_NAMETYPE, RPID, identifier_of_type
from fhirmwl.fhir.references import reference_id
from fhirmwl.mpps.model import (
    COMPLETED,
    DUPLICATE_SOP_INSTANCE,
    IN_PROGRESS,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    MppsRefusal,
    PerformedStep,
    check_create,
    discontinuation_reason,
    merge_set,
    performed_step,
    procedure_resource,
    study_counts,
    task_status_for,
)
from fhirmwl.services.orders import OrderContext, change_step_status
from fhirmwl.services.orders.graph import referencing
from fhirmwl.services.orders.status import NOT_STARTED
from fhirmwl.store import Store, Stored, Tx
from fhirmwl.store.migrations import Migration

log = logging.getLogger("fhirmwl.mpps")

MPPS_MIGRATION = Migration(
    170,
    "modality performed procedure steps",
    (
        """CREATE TABLE mpps (sop_instance_uid TEXT PRIMARY KEY, state TEXT NOT NULL,
            procedure_id TEXT NOT NULL, task_ids TEXT NOT NULL, accession TEXT NOT NULL,
            patient_id TEXT NOT NULL, station_aet TEXT NOT NULL, matched INTEGER NOT NULL,
            attrs TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)""",
        "CREATE INDEX ix_mpps_matched ON mpps (matched, accession)",
    ),
)


def _unique(tx: Tx, kind: str, value: str) -> list[tuple[str, str]]:
    rows = tx.conn.execute(
        "SELECT r.res_type, r.res_id FROM unique_ident u JOIN resource r ON r.rid = u.rid "
        "WHERE u.kind = ? AND u.value = ?",
        (kind, value),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _rp_ids(tx: Tx, accession: str, rpid: str, study_uid: str) -> list[str]:
    """Requested Procedures named by accession (+ Requested Procedure ID) or Study UID."""
    rps: list[str] = []
    if accession:
        isr_ids = [i for t, i in _unique(tx, "ACSN", accession) if t == "ServiceRequest"]
        keys = tx.references_to("ServiceRequest", isr_ids, "ServiceRequest", "based-on")
        for rp in tx.read_many(list(keys)):
            ident = identifier_of_type(rp.resource(), RPID) or {}
            if not rpid or ident.get("value") == rpid:
                rps.append(rp.res_id)
    if not rps and study_uid:
        for _, sid in _unique(tx, "STUDYUID", f"urn:oid:{study_uid}"):
            study = tx.read("ImagingStudy", sid)
            for b in (study.resource().get("basedOn") or []) if study and study.content else []:
                rp_id = reference_id(b, "ServiceRequest")
                if rp_id:
                    rps.append(rp_id)
    return list(dict.fromkeys(rps))


def _by_patient(tx: Tx, ctx: OrderContext, step: PerformedStep) -> list[str]:
    """The one not-started step of the patient with the MPPS modality, if there is exactly one."""
    if not step.patient_id:
        return []
    patients = ctx.resources.find(tx, "Patient", urlencode({"identifier": step.patient_id}))
    keys = tx.references_to("Patient", patients, "Task", "patient") if patients else []
    open_steps = []
    for task in tx.read_many(list(dict.fromkeys(keys))):
        res = task.resource()
        modalities = {
            c.get("code")
            for inp in res.get("input") or []
            if any(cd.get("code") == DCM_MODALITY_CODE for cd in inp["type"].get("coding") or [])
            for c in (inp.get("valueCodeableConcept") or {}).get("coding") or []
        }
        if res.get("status") in NOT_STARTED and step.modality in modalities:
            open_steps.append(task.res_id)
    return open_steps if len(open_steps) == 1 else []


def resolve(tx: Tx, ctx: OrderContext, step: PerformedStep) -> list[str]:
    """Task ids of the scheduled steps the MPPS performs (empty: unscheduled / unknown)."""
    found: list[str] = []
    for ref in step.references:
        rps = _rp_ids(tx, ref.accession, ref.requested_procedure_id, ref.study_uid)
        by_id = _unique(tx, "SPSID", ref.sps_id) if ref.sps_id else []
        tasks = [i for t, i in by_id if t == "Task"]
        if rps:
            of_rps = {i for _, i in referencing(tx, rps, "Task")}
            tasks = [t for t in tasks if t in of_rps] if tasks else sorted(of_rps)
        found += tasks
    if not found and not any(r.scheduled for r in step.references):
        found = _by_patient(tx, ctx, step)
    return list(dict.fromkeys(found))


def _move(tx: Tx, ctx: OrderContext, task_ids: list[str], step: PerformedStep) -> None:
    """Task statuses through the order service's status guard; refusals become 0110."""
    target = task_status_for(step)
    reason = discontinuation_reason(step)
    for task_id in task_ids:
        current = tx.read("Task", task_id)
        status = current.resource().get("status") if current and current.content else None
        try:
            if target != "in-progress" and (status in NOT_STARTED or status == "on-hold"):
                change_step_status(tx, task_id, "in-progress", ctx)
            change_step_status(tx, task_id, target, ctx, reason)
        except BusinessRuleViolation:
            raise MppsRefusal(
                PROCESSING_FAILURE, f"scheduled step is {status}; cannot become {target}"
            ) from None


def _subject_and_performer(tx: Tx, step: PerformedStep, tasks: list[Stored]) -> tuple[Any, Any]:
    subject: dict[str, Any] = {"display": "unidentified patient"}
    if step.patient_id:
        subject = {"identifier": {"value": step.patient_id}}
    performer: dict[str, Any] = {"display": step.station_aet}
    for task in tasks:
        res = task.resource()
        if (res.get("for") or {}).get("reference"):
            subject = {"reference": res["for"]["reference"]}
        for perf in res.get("requestedPerformer") or []:
            dev_id = reference_id(perf.get("reference"), "Device")
            device = tx.read("Device", dev_id) if dev_id else None
            names = device.resource().get("name") or [] if device and device.content else []
            if any(n.get("value") == step.station_aet for n in names if _registered(n)):
                performer = {"reference": f"Device/{dev_id}", "display": step.station_aet}
    return subject, performer


def _registered(name: dict[str, Any]) -> bool:
    kind = name.get("type")
    if isinstance(kind, dict):
        return any(c.get("system") == DEVICE_NAMETYPE for c in kind.get("coding") or [])
    return kind == "registered-name"


class MppsService:
    """N-CREATE and N-SET of the MPPS SOP Class against one store and order context."""

    def __init__(self, store: Store, ctx: OrderContext, tz: ZoneInfo) -> None:
        self.store, self.ctx, self.tz = store, ctx, tz

    def _procedure(self, tx: Tx, step: PerformedStep, task_ids: list[str]) -> dict[str, Any]:
        tasks = tx.read_many([("Task", t) for t in task_ids])
        rps = [
            f"ServiceRequest/{rp}"
            for t in tasks
            for b in t.resource().get("basedOn") or []
            if (rp := reference_id(b, "ServiceRequest"))
        ]
        subject, performer = _subject_and_performer(tx, step, tasks)
        return procedure_resource(step, list(dict.fromkeys(rps)), subject, performer)

    def create(self, uid: str, ds: Dataset) -> PerformedStep:
        check_create(ds)
        step = performed_step(uid, ds, self.tz)
        try:
            with self.store.write() as tx:
                if tx.conn.execute(
                    "SELECT 1 FROM mpps WHERE sop_instance_uid = ?", (uid,)
                ).fetchone():
                    raise MppsRefusal(DUPLICATE_SOP_INSTANCE, "SOP Instance UID already exists")
                task_ids = resolve(tx, self.ctx, step)
                _move(tx, self.ctx, task_ids, step)
                resource = self._procedure(tx, step, task_ids)
                proc = self.ctx.resources.create(tx, "Procedure", resource)
                now = tx.store.clock()
                tx.conn.execute(
                    "INSERT INTO mpps (sop_instance_uid, state, procedure_id, task_ids, accession,"
                    " patient_id, station_aet, matched, attrs, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        uid,
                        step.state,
                        proc.stored.res_id,
                        orjson.dumps(task_ids).decode(),
                        step.accession,
                        step.patient_id,
                        step.station_aet,
                        1 if task_ids else 0,
                        ds.to_json(),
                        now,
                        now,
                    ),
                )
        except DuplicateIdentifier:  # a concurrent N-CREATE of the same UID won the insert
            raise MppsRefusal(DUPLICATE_SOP_INSTANCE, "SOP Instance UID already exists") from None
        log.info(
            "MPPS %s IN PROGRESS from %s: Procedure/%s, steps %s",
            uid,
            step.station_aet,
            proc.stored.res_id,
            ",".join(task_ids) or "none (unscheduled)",
        )
        return step

    def update(self, uid: str, modifications: Dataset) -> PerformedStep:
        with self.store.write() as tx:
            lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
            row = tx.conn.execute(
                f"SELECT attrs, procedure_id, task_ids FROM mpps WHERE sop_instance_uid = ?{lock}",
                (uid,),
            ).fetchone()
            if row is None:
                raise MppsRefusal(NO_SUCH_OBJECT_INSTANCE, "no such performed procedure step")
            merged = merge_set(Dataset.from_json(row[0]), modifications)
            step = performed_step(uid, merged, self.tz)
            task_ids = list(orjson.loads(row[2]))
            self._apply(tx, step, str(row[1]), task_ids)
            tx.conn.execute(
                "UPDATE mpps SET state = ?, attrs = ?, updated = ? WHERE sop_instance_uid = ?",
                (step.state, merged.to_json(), tx.store.clock(), uid),
            )
        log.info("MPPS %s %s: steps %s", uid, step.state, ",".join(task_ids) or "none")
        return step

    def _apply(
        self, tx: Tx, step: PerformedStep, proc_id: str, task_ids: list[str], move: bool = True
    ) -> None:
        """Task statuses, the Procedure and (COMPLETED) the ImagingStudy counts."""
        if move and task_ids and step.state != IN_PROGRESS:
            _move(tx, self.ctx, task_ids, step)
        proc = self._procedure(tx, step, task_ids)
        self.ctx.resources.update(tx, "Procedure", proc_id, dict(proc, id=proc_id))
        if step.state == COMPLETED:
            for study in self._studies(tx, step, proc.get("basedOn") or []):
                updated = study_counts(study.resource(), step, f"Procedure/{proc_id}")
                self.ctx.resources.update(tx, "ImagingStudy", study.res_id, updated)

    @staticmethod
    def _studies(tx: Tx, step: PerformedStep, based_on: list[dict[str, Any]]) -> list[Stored]:
        keys = [k for k in _unique(tx, "STUDYUID", f"urn:oid:{step.study_uid}") if step.study_uid]
        if not keys:
            rps = [r for b in based_on if (r := reference_id(b, "ServiceRequest"))]
            keys = referencing(tx, rps, "ImagingStudy") if rps else []
        return [s for s in tx.read_many(keys) if s.content]

    def match_pending(self) -> int:
        """Link unmatched performed steps to orders known now; returns how many matched."""
        with self.store.read() as tx:
            rows = tx.conn.execute(
                "SELECT sop_instance_uid FROM mpps WHERE matched = 0 ORDER BY created"
            ).fetchall()
        matched = 0
        for (uid,) in rows:
            try:
                matched += self._match_one(str(uid))
            except (MppsRefusal, BusinessRuleViolation) as exc:
                log.warning("MPPS %s cannot be matched: %s", uid, exc)
        return matched

    def _match_one(self, uid: str) -> int:
        with self.store.write() as tx:
            lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
            row = tx.conn.execute(
                f"SELECT attrs, procedure_id FROM mpps WHERE sop_instance_uid = ? AND matched = 0"
                f"{lock}",
                (uid,),
            ).fetchone()
            if row is None:
                return 0
            step = performed_step(uid, Dataset.from_json(row[0]), self.tz)
            task_ids = resolve(tx, self.ctx, step)
            if not task_ids:
                return 0
            _move(tx, self.ctx, task_ids, step)
            self._apply(tx, step, str(row[1]), task_ids, move=False)
            tx.conn.execute(
                "UPDATE mpps SET matched = 1, task_ids = ?, updated = ? WHERE sop_instance_uid = ?",
                (orjson.dumps(task_ids).decode(), tx.store.clock(), uid),
            )
        log.info("MPPS %s matched to steps %s", uid, ",".join(task_ids))
        return 1


class PendingMatcher:
    """WriteHook: after a change to an order commits, try to match unmatched performed steps."""

    def __init__(self, service: MppsService) -> None:
        self.service = service
        self.local = threading.local()

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        if getattr(self.local, "running", False):
            return
        if not any(t in ("ServiceRequest", "Task") for t, _ in touched):
            return
        if tx.conn.execute("SELECT 1 FROM mpps WHERE matched = 0 LIMIT 1").fetchone():
            tx.after_commit.append(self.run)

    def run(self) -> None:
        self.local.running = True
        try:
            self.service.match_pending()
        except Exception:  # noqa: BLE001 - the order write already committed; retried later
            log.exception("matching unscheduled performed steps failed")
        finally:
            self.local.running = False
