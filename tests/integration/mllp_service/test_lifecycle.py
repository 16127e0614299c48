"""Golden order lifecycles over real MLLP: the FHIR state after each message, retransmission,
stale messages, store failure, and an A40 merge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirmwl.runtime import Runtime
from fhirmwl.services.ingest_v2 import log
from tests.integration.mllp_service.conftest import order_state
from tests.integration.mllp_service.messages import a40, msa, orm


def _state(server: Runtime, placer: str) -> dict[str, Any]:
    with server.services.store.read() as tx:
        return order_state(tx, placer)


def _count(server: Runtime, rtype: str) -> int:
    with server.services.store.read() as tx:
        return int(tx.conn.execute(
            "SELECT COUNT(*) FROM resource WHERE res_type = ? AND deleted = 0", (rtype,)
        ).fetchone()[0])  # fmt: skip


def test_nw_xo_ca(server: Runtime, send: Callable[..., list[bytes]]) -> None:
    (ack,) = send(orm("NW", "P100", "C1"))
    assert msa(ack) == ("AA", "")
    first = _state(server, "P100")
    assert (first["isr"], first["rps"], first["tasks"]) == ("active", ["active"], ["requested"])
    assert first["accession"] == "ACCP100"
    srs = _count(server, "ServiceRequest")

    (ack,) = send(orm("XO", "P100", "C2", msh7="20250101121000", desc="CT Abdomen w contrast"))
    assert msa(ack) == ("AA", "")
    changed = _state(server, "P100")
    assert changed["isr_id"] == first["isr_id"] and changed["tasks"] == ["requested"]
    assert changed["code_text"] == ["CT Abdomen w contrast"]
    assert _count(server, "ServiceRequest") == srs  # updated in place, no twin

    (ack,) = send(orm("CA", "P100", "C3", msh7="20250101122000"))
    assert msa(ack) == ("AA", "")
    cancelled = _state(server, "P100")
    assert (cancelled["isr"], cancelled["rps"], cancelled["tasks"]) == (
        "revoked", ["revoked"], ["cancelled"],
    )  # fmt: skip

    # an XO after the CA (even a newer one) is refused and changes nothing
    (ack,) = send(orm("XO", "P100", "C4", msh7="20250101123000", desc="late change"))
    assert msa(ack) == ("AE", "207")
    assert b"cancelled earlier" in ack
    assert _state(server, "P100") == cancelled


def test_repeated_nw_and_retransmission_apply_once(
    server: Runtime, send: Callable[..., list[bytes]]
) -> None:
    message = orm("NW", "P200", "C10", omi=True)
    first, again = send(message, message)
    assert first == again and msa(first) == ("AA", "")
    (other,) = send(orm("NW", "P200", "C11", omi=True))  # same order, new control id
    assert msa(other) == ("AA", "")
    assert _count(server, "Task") == 1 and _count(server, "ServiceRequest") == 2
    with server.services.store.read() as tx:
        rows = log.recent(tx.conn, 10)
    assert [r.status for r in rows] == [log.APPLIED, log.DUPLICATE, log.APPLIED]
    assert rows[2].touched and rows[1].touched == []


def test_out_of_order_xo_is_refused(server: Runtime, send: Callable[..., list[bytes]]) -> None:
    send(orm("NW", "P300", "C20", msh7="20250101120000"))
    send(orm("XO", "P300", "C21", msh7="20250101130000", desc="newer"))
    (ack,) = send(orm("XO", "P300", "C22", msh7="20250101125000", desc="older"))
    assert msa(ack) == ("AE", "207") and b"older than the last change" in ack
    assert _state(server, "P300")["code_text"] == ["newer"]


def test_discontinue_status_hold_release(server: Runtime, send: Callable[..., list[bytes]]) -> None:
    send(orm("NW", "P400", "C30"), orm("NW", "P401", "C31"))
    (hd,) = send(orm("HD", "P400", "C32", msh7="20250101121000"))
    assert msa(hd)[0] == "AA" and _state(server, "P400")["tasks"] == ["on-hold"]
    (rl,) = send(orm("RL", "P400", "C33", msh7="20250101122000"))
    assert msa(rl)[0] == "AA"
    assert (_state(server, "P400")["isr"], _state(server, "P400")["tasks"]) == (
        "active", ["requested"],
    )  # fmt: skip
    (sc,) = send(orm("SC", "P400", "C34", msh7="20250101123000", orc5="IP"))
    assert msa(sc)[0] == "AA" and _state(server, "P400")["tasks"] == ["in-progress"]
    # a plain cancel of a started order is refused; a discontinue leaves the running step
    (ca,) = send(orm("CA", "P400", "C35", msh7="20250101124000"))
    assert msa(ca) == ("AE", "207") and _state(server, "P400")["tasks"] == ["in-progress"]
    (dc,) = send(orm("DC", "P400", "C36", msh7="20250101125000"))
    assert msa(dc)[0] == "AA"
    assert (_state(server, "P400")["isr"], _state(server, "P400")["tasks"]) == (
        "revoked", ["in-progress"],
    )  # fmt: skip
    (dc2,) = send(orm("DC", "P401", "C37", msh7="20250101125000"))
    assert msa(dc2)[0] == "AA" and _state(server, "P401")["tasks"] == ["cancelled"]
    (unknown,) = send(orm("HD", "P499", "C38"))
    assert msa(unknown) == ("AE", "204")


def test_a40_moves_orders_to_surviving_patient(
    server: Runtime, send: Callable[..., list[bytes]]
) -> None:
    send(orm("NW", "P500", "C40", pid="OLD1"), orm("NW", "P501", "C41", pid="KEEP1"))
    old_subject = _state(server, "P500")["subject"]
    keep_subject = _state(server, "P501")["subject"]
    (ack,) = send(a40("KEEP1", "OLD1", "C42"))
    assert msa(ack) == ("AA", "")
    assert _state(server, "P500")["subject"] == keep_subject != old_subject
    with server.services.store.read() as tx:
        merged = tx.get("Patient", old_subject.split("/")[1])
        with_tasks = tx.references_to("Patient", [old_subject.split("/")[1]], "Task", None)
    assert merged["active"] is False and with_tasks == []
    assert merged["link"] == [{"other": {"reference": keep_subject}, "type": "replaced-by"}]


class _FailingHook:
    def before_commit(self, tx: Any, touched: list[tuple[str, str]]) -> None:
        raise RuntimeError("disk full (injected)")


def test_store_failure_answers_ae_207_and_writes_nothing(
    server: Runtime, send: Callable[..., list[bytes]]
) -> None:
    hook = _FailingHook()
    server.services.store.add_hook(hook)
    try:
        (ack,) = send(orm("NW", "P600", "C50"))
    finally:
        server.services.store.hooks.remove(hook)
    assert msa(ack) == ("AE", "207")
    assert _count(server, "ServiceRequest") == 0 and _count(server, "Patient") == 0
    with server.services.store.read() as tx:
        (row,) = log.recent(tx.conn, 5)
    assert row.status == log.FAILED and row.raw.startswith(b"MSH|")
    (again,) = send(orm("NW", "P600", "C50"))  # the resend is applied, not a "duplicate"
    assert msa(again) == ("AA", "") and _count(server, "Task") == 1
