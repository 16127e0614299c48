"""Group commit: messages from concurrent MLLP connections share one SQLite transaction.

Why: SQLite has one writer, and its COMMIT (writing the WAL frames of every page the message
dirtied, and now and then a checkpoint) costs about as much as a third of a message's own work.
When several connections wait on the write lock anyway, the one that gets it (the *leader*)
takes every message queued at that moment, runs each in a SAVEPOINT of one transaction and
commits once; each message is ACKed only after that commit, so "ACK after commit" holds, and a
kill -9 before the commit loses no acknowledged message. A message that fails rolls back to its
own savepoint only: the others of the group are not affected, and it is answered exactly as
alone (its refusal is logged in a transaction of its own, after the group). One connection
sending alone never waits: its group has one message and the leader starts at once; nothing is
delayed to fill a group.

Each message is its own unit of work inside the group: a fresh ``Tx`` on the group's connection
(its own ``touched``/``created`` lists), the store's write hooks (worklist index, audit, outbox)
run for it at the end of its savepoint, in the message's context (door, peer, audit context) —
what ``Store.write`` does at commit for a unit of work alone — and its after-commit callbacks
run after the group commit. PostgreSQL runs writers concurrently, so this is SQLite only
(``ingest_v2.service``).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirmwl.errors import DuplicateIdentifier
from fhirmwl.store import Store, Tx

MAX_GROUP = 64
_SAVEPOINT = "fhirmwl_message"


@dataclass
class _Item:
    work: Callable[[Tx], Any]
    context: contextvars.Context
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: Any = None
    error: BaseException | None = None
    after: list[Callable[[], None]] = field(default_factory=list)


class GroupCommit:
    """``run(work)``: ``work(tx)`` in a shared transaction; returns once it is committed."""

    def __init__(self, store: Store, max_group: int = MAX_GROUP) -> None:
        self.store = store
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Item] = []
        self._busy = False
        self.groups = 0  # transactions committed (for tests and the benchmark)
        self.messages = 0

    def run(self, work: Callable[[Tx], Any]) -> Any:
        """Run ``work`` in a unit of work of its own inside the next group; its result after
        the group committed, or its exception (nothing of it is stored)."""
        item = _Item(work, contextvars.copy_context())
        with self._lock:
            self._queue.append(item)
            if not self._busy:
                self._busy = item.lead = True
                item.wake.set()
        item.wake.wait()
        if item.lead:
            self._lead()
        if item.error is not None:
            raise item.error
        return item.result

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[: self.max_group]
            del self._queue[: len(group)]
        try:
            self._commit(group)
        finally:
            with self._lock:
                if self._queue:  # the next waiting message leads the next group
                    self._queue[0].lead = True
                    self._queue[0].wake.set()
                else:
                    self._busy = False
            for item in group:
                if not item.lead:
                    item.wake.set()

    def _commit(self, group: list[_Item]) -> None:
        try:
            with self.store.write() as tx:
                for item in group:
                    item.context.run(self._one, tx, item)
        except BaseException as exc:  # noqa: BLE001 - the commit failed: nothing was stored
            for item in group:
                if item.error is None:
                    item.error = exc
            return
        self.groups += 1
        self.messages += len(group)
        for item in group:
            for callback in item.after:
                callback()

    def _one(self, outer: Tx, item: _Item) -> None:
        outer.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        tx = Tx(outer.conn, self.store)
        try:
            item.result = item.work(tx)
            if tx.touched:  # what Store.write does before the commit of a unit of work
                touched = list(dict.fromkeys(tx.touched))
                for hook in self.store.hooks:
                    hook.before_commit(tx, touched)
        except BaseException as exc:  # noqa: BLE001 - handed back to the message's thread
            outer.conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            outer.conn.execute(f"RELEASE {_SAVEPOINT}")
            item.error = _as_store_error(self.store, exc)
            return
        outer.conn.execute(f"RELEASE {_SAVEPOINT}")
        item.after = tx.after_commit


def _as_store_error(store: Store, exc: BaseException) -> BaseException:
    if store.db.is_unique_violation(exc):
        error = DuplicateIdentifier(
            "a concurrent writer created the same resource or business identifier; "
            "nothing was written, retry the request"
        )
        error.__cause__ = exc
        return error
    return exc
