"""UPS state changes (PS3.4 CC.1.1, PS3.18 §11.7/§11.8) on the broker's scheduled steps.

A workitem is a Task seen as a Unified Procedure Step (``mapping.fhir_to_dicom.ups``); its
Procedure Step State follows Task.status. :func:`decide` is the pure state table: a claim
(SCHEDULED → IN PROGRESS) must carry a new Transaction UID, which the broker keeps and requires
for COMPLETED / CANCELED; repeating a final state is a success with a warning; everything else
is a conflict. :class:`UpsStateService` applies the decision in one unit of work through the
order service's ``change_step_status`` (the one status guard), so the worklist index and the
notifications follow. ``ups_workitem`` maps workitem UIDs (derived from Task ids, not
reversible) back to Tasks and holds the Transaction UID of the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirmwl.errors import BusinessRuleViolation
from fhirmwl.mapping.fhir_to_dicom.ups import workitem_uid
from fhirmwl.services.orders import OrderContext, change_step_status
from fhirmwl.services.orders.status import NOT_STARTED
from fhirmwl.store import Store, Tx
from fhirmwl.store.migrations import Migration

SCHEDULED, IN_PROGRESS, COMPLETED, CANCELED = "SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"
TASK_STATUS = {IN_PROGRESS: "in-progress", COMPLETED: "completed", CANCELED: "cancelled"}
MISSING_UID = "The Transaction UID is missing."
WRONG_UID = "The Transaction UID is incorrect."
INCONSISTENT = "The submitted request is inconsistent with the state of the UPS Instance."

UPS_MIGRATION = Migration(
    171,
    "UPS workitem UIDs and claims",
    (
        """CREATE TABLE ups_workitem (workitem_uid TEXT PRIMARY KEY, task_id TEXT NOT NULL,
            transaction_uid TEXT, claimed TEXT)""",
        "CREATE INDEX ix_ups_workitem_task ON ups_workitem (task_id)",
    ),
)


def ups_state(task_status: str) -> str:
    """Procedure Step State (0074,1000) of a Task status."""
    if task_status in NOT_STARTED or task_status == "on-hold":
        return SCHEDULED
    if task_status == "in-progress":
        return IN_PROGRESS
    return COMPLETED if task_status == "completed" else CANCELED


@dataclass(frozen=True)
class Decision:
    http_status: int  # 200 applied (or nothing to do), 400, 409
    task_status: str | None = None  # the Task status to set, None = no change
    warning: str | None = None  # Warning header text (PS3.18 §11.7.3.2)
    claim: bool = False  # keep the Transaction UID


def decide(current: str, requested: str, held_uid: str | None, given_uid: str) -> Decision:
    """The Change Workitem State table (PS3.4 CC.1.1, Table CC.1.1-2)."""
    if requested not in TASK_STATUS:
        return Decision(400, warning=f"Procedure Step State {requested[:20]!r} cannot be set.")
    if not given_uid:
        return Decision(400, warning=MISSING_UID)
    if current == requested and requested in (COMPLETED, CANCELED):
        text = f"The UPS is already in the requested state of {requested}."
        return Decision(200, warning=text)
    if current == SCHEDULED and requested == IN_PROGRESS:
        return Decision(200, TASK_STATUS[IN_PROGRESS], claim=True)
    if current == IN_PROGRESS and requested in (COMPLETED, CANCELED):
        if held_uid != given_uid:
            return Decision(409, warning=WRONG_UID)
        return Decision(200, TASK_STATUS[requested])
    return Decision(409, warning=INCONSISTENT)


@dataclass(frozen=True)
class Outcome:
    http_status: int
    warning: str | None = None


class UpsStateService:
    """Change Workitem State and Request Cancellation against the store and order service."""

    def __init__(self, store: Store, ctx: OrderContext) -> None:
        self.store, self.ctx = store, ctx

    def change_state(self, uid: str, requested: str, transaction_uid: str) -> Outcome:
        with self.store.write() as tx:
            found = self._locked(tx, uid)
            if found is None:
                return Outcome(404, "The workitem is not known.")
            task_id, held = found
            task = tx.read("Task", task_id)
            if task is None or task.content is None:
                return Outcome(404, "The workitem is not known.")
            current = ups_state(str(task.resource().get("status")))
            decision = decide(current, requested, held, transaction_uid)
            if decision.task_status:
                try:
                    change_step_status(tx, task_id, decision.task_status, self.ctx)
                except BusinessRuleViolation:
                    return Outcome(409, INCONSISTENT)
            if decision.claim:
                tx.conn.execute(
                    "UPDATE ups_workitem SET transaction_uid = ?, claimed = ? "
                    "WHERE workitem_uid = ?",
                    (transaction_uid, tx.store.clock(), uid),
                )
            return Outcome(decision.http_status, decision.warning)

    def request_cancel(self, uid: str, reason: str) -> Outcome:
        """A SCHEDULED workitem is cancelled by the broker itself (CC.2.4.3: the SCP may);
        an IN PROGRESS one belongs to its performer, which the broker cannot reach."""
        with self.store.write() as tx:
            found = self._locked(tx, uid)
            task = tx.read("Task", found[0]) if found else None
            if found is None or task is None or task.content is None:
                return Outcome(404, "The workitem is not known.")
            current = ups_state(str(task.resource().get("status")))
            if current == CANCELED:
                return Outcome(202, "The UPS is already in the requested state of CANCELED.")
            if current == COMPLETED:
                return Outcome(409, "The UPS is already COMPLETED.")
            if current == IN_PROGRESS:
                return Outcome(409, "The performer cannot be contacted.")
            concept = {"text": reason or "cancellation requested over UPS-RS"}
            change_step_status(tx, found[0], "cancelled", self.ctx, concept)
            return Outcome(202)

    def _locked(self, tx: Tx, uid: str) -> tuple[str, str | None] | None:
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        row = tx.conn.execute(
            f"SELECT task_id, transaction_uid FROM ups_workitem WHERE workitem_uid = ?{lock}",
            (uid,),
        ).fetchone()
        return (str(row[0]), row[1]) if row else None


class WorkitemIndex:
    """WriteHook: every Task gets its ``ups_workitem`` row (workitem UID → Task id)."""

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        tasks = [rid for rtype, rid in touched if rtype == "Task"]
        if tasks:
            add_workitems(tx, tasks)


def add_workitems(tx: Tx, task_ids: list[str]) -> None:
    tx.conn.executemany(
        "INSERT INTO ups_workitem (workitem_uid, task_id) VALUES (?, ?) "
        "ON CONFLICT (workitem_uid) DO NOTHING",
        [(workitem_uid(t), t) for t in task_ids],
    )


def backfill(store: Store) -> int:
    """Rows for Tasks written before the table existed (a no-op once done)."""
    with store.write() as tx:
        rows = tx.conn.execute(
            "SELECT res_id FROM resource WHERE res_type = 'Task' AND res_id NOT IN "
            "(SELECT task_id FROM ups_workitem)"
        ).fetchall()
        add_workitems(tx, [str(r[0]) for r in rows])
    return len(rows)


def install(services: Any) -> UpsStateService:
    from fhirmwl.store.migrations import MIGRATIONS, register

    if not any(m.version == UPS_MIGRATION.version for m in MIGRATIONS):
        register(UPS_MIGRATION)  # applied by fhirmwl.wiring once every feature is installed
    services.store.add_hook(WorkitemIndex())
    services.after_migrate.append(lambda: backfill(services.store))
    service = UpsStateService(services.store, services.orders())
    services.ups_state = service
    return service
