"""Recording audit events: in the unit of work for changes, through a small queue for reads.

Each door opens an ``AccessContext`` at its edge (who, from where, what kind of access). A
store ``WriteHook`` then appends the AuditEvent of every unit of work that changed resources
*inside that transaction*: an acknowledged HL7 message or a ``201`` always has its event, and a
rolled-back change never has one claiming success. When the door's answer is ready and no
transaction recorded the access (a read, a query, a refusal, a retransmission), the door hands
the record to the ``AuditWriter``, which appends queued records in batches from one thread, so a
C-FIND or a read never waits for a write lock. Records still queued at a crash are lost; change
events never are (docs/audit.md).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhirmwl.audit import store as audit_store
from fhirmwl.audit.events import REST, AuditRecord, Code
from fhirmwl.fhir.dates import now_instant

if TYPE_CHECKING:
    from fhirmwl.store import Store, Tx

log = logging.getLogger("fhirmwl.audit")


@dataclass
class AccessContext:
    """What a door knows about the current access before any transaction runs."""

    door: str
    action: str = "E"
    category: Code = REST
    code: Code = REST
    agent_id: str = ""
    agent_name: str = ""
    agent_network: str = ""
    agent_cert: str = ""
    query: bytes | None = None
    details: dict[str, str] = field(default_factory=dict)
    patients: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    recorded: bool = False  # a committed unit of work already holds this access's event
    # Who the caller is, once authentication has run (HTTP: from the verified token claims).
    principal: Callable[[], tuple[str, str]] | None = None

    def resolve_agent(self) -> None:
        if self.principal is not None:
            self.agent_id, self.agent_name = self.principal()

    def record(self, outcome: str = "0", outcome_text: str = "") -> AuditRecord:
        return AuditRecord(
            recorded=now_instant(),
            door=self.door,
            action=self.action,
            category=self.category,
            code=self.code,
            outcome=outcome,
            outcome_text=outcome_text,
            agent_id=self.agent_id,
            agent_name=self.agent_name,
            agent_network=self.agent_network,
            agent_cert=self.agent_cert,
            patients=list(dict.fromkeys(self.patients)),
            entities=list(dict.fromkeys(self.entities)),
            query=self.query,
            details=dict(self.details),
        )


CURRENT: contextvars.ContextVar[AccessContext | None] = contextvars.ContextVar(
    "fhirmwl_audit_access", default=None
)


@contextmanager
def access(ctx: AccessContext) -> Iterator[AccessContext]:
    token = CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        CURRENT.reset(token)


def _patients_of(tx: Tx, touched: list[tuple[str, str]]) -> list[str]:
    """Patients a unit of work concerns: touched Patients and what the others reference."""
    patients = [res_id for res_type, res_id in touched if res_type == "Patient"]
    others = [(t, i) for t, i in touched if t != "Patient"][:200]
    by_type: dict[str, list[str]] = {}
    for res_type, res_id in others:
        by_type.setdefault(res_type, []).append(res_id)
    for res_type, ids in by_type.items():
        # From the rows of these resources (known to the unit of work when it wrote them),
        # never by walking every reference to a Patient.
        patients += [i for _, i in tx.references_from(res_type, ids, None, "Patient")]
    return list(dict.fromkeys(patients))


class AuditHook:
    """Store write hook: the AuditEvent of a unit of work, in the same transaction."""

    def before_commit(self, tx: Tx, touched: list[tuple[str, str]]) -> None:
        ctx = CURRENT.get()
        if ctx is None:
            ctx = AccessContext(door="system", agent_id="fhirmwl")
        if ctx.recorded:
            return
        ctx.resolve_agent()
        rec = ctx.record()
        if ctx.door in ("system", "mllp") or ctx.action == "E":
            created = all(key in tx.created for key in touched)
            rec.action = "C" if created else "U"
            if ctx.door == "mllp":
                rec.details.setdefault("ack", "AA")
        rec.patients = list(dict.fromkeys([*rec.patients, *_patients_of(tx, touched)]))
        rec.entities = list(
            dict.fromkeys([*rec.entities, *(f"{t}/{i}" for t, i in touched if t != "Patient")])
        )[:100]
        audit_store.insert(tx.conn, [rec])
        tx.after_commit.append(lambda: setattr(ctx, "recorded", True))


class AuditWriter:
    """Appends queued records in batches from one thread (reads, queries, refusals)."""

    name = "audit"

    def __init__(self, store: Store, batch: int = 200, interval: float = 0.25) -> None:
        self.store = store
        self.batch = batch
        self.interval = interval
        self._queue: queue.Queue[AuditRecord] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="audit", daemon=True)

    def submit(self, rec: AuditRecord) -> None:
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            log.error("audit queue full: event dropped (door %s)", rec.door)

    def start(self) -> None:
        if not self.thread.is_alive():
            self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.drain()

    def flush(self) -> int:
        records: list[AuditRecord] = []
        while len(records) < self.batch:
            try:
                records.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if records:
            try:
                with self.store.write() as tx:
                    audit_store.insert(tx.conn, records)
            except Exception:  # noqa: BLE001 - put them back and try again later
                log.exception("audit: %d event(s) not written yet", len(records))
                for rec in records:
                    self.submit(rec)
                return 0
        return len(records)

    def drain(self) -> None:
        """Write everything queued (shutdown)."""
        while self.flush():
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.flush() < self.batch:
                self._stop.wait(self.interval)

    def write_now(self, rec: AuditRecord) -> None:
        """Synchronous append (service start/stop, where no queue runs yet or any more)."""
        with self.store.write() as tx:
            audit_store.insert(tx.conn, [rec])
