"""Order control over real MLLP on both backends: reused control ids, MSH-7 ordering, a cancel
that overtakes its order, and 20 concurrent XO over 4 connections (issue 10, items 3 and 4)."""

from __future__ import annotations

import random
import threading

from fhirmwl.runtime import Runtime
from fhirmwl.services.ingest_v2 import log
from tests.integration.mllp_service.conftest import order_state
from tests.integration.mllp_service.messages import msa, orm
from tests.integration.pipeline.conftest import sender, worklist_items


def _code_text(runtime: Runtime, placer: str) -> list[str]:
    with runtime.services.store.read() as tx:
        return list(order_state(tx, placer)["code_text"])


def _placers(runtime: Runtime) -> set[str]:
    return {i["00402016"]["Value"][0] for i in worklist_items(runtime)}


def test_reused_control_id_with_new_content_is_a_new_message(broker: Runtime) -> None:
    send = sender(broker)
    first = orm("NW", "R1", "MSG00018", desc="CT Abdomen")
    other = orm("NW", "R2", "MSG00018", desc="MR Brain")  # same MSH-10, another order
    a1, a2, again = send(first, other, first)
    assert msa(a1) == msa(a2) == ("AA", "")
    assert again == a1  # a true retransmission gets the stored ACK
    assert _placers(broker) == {"R1", "R2"}  # nothing acknowledged is dropped
    with broker.services.store.read() as tx:
        rows = log.recent(tx.conn, 3)
    assert [r.status for r in rows] == [log.DUPLICATE, log.APPLIED, log.APPLIED]
    assert "MSH-10 MSG00018 reused with different content" in (rows[1].error or "")
    # a cancel with a reused control id is applied too
    (ca,) = send(orm("CA", "R2", "MSG00018", msh7="20250101121000"))
    assert msa(ca) == ("AA", "") and _placers(broker) == {"R1"}


def test_cancel_before_its_order_is_remembered(broker: Runtime) -> None:
    send = sender(broker)
    (ca,) = send(orm("CA", "L1", "L-C2", msh7="20250101121000"))
    assert msa(ca) == ("AA", "")
    (nw,) = send(orm("NW", "L1", "L-C1", msh7="20250101120000"))
    assert msa(nw) == ("AE", "207")
    assert b"cancelled this order before it arrived" in nw and b"MSH^1^7" in nw
    assert _placers(broker) == set()
    with broker.services.store.read() as tx:
        n = tx.conn.execute("SELECT COUNT(*) FROM resource WHERE res_type = 'Task'").fetchone()
    assert n[0] == 0
    # an order placed again later than the cancel is a new order and is applied
    (renewed,) = send(orm("NW", "L1", "L-C3", msh7="20250101122000"))
    assert msa(renewed) == ("AA", "") and _placers(broker) == {"L1"}


def test_older_xo_never_overwrites_a_newer_one(broker: Runtime) -> None:
    send = sender(broker)
    send(orm("NW", "O1", "O-C1", msh7="20250101120000"))
    (newer,) = send(orm("XO", "O1", "O-C2", msh7="20250101130000", desc="newer"))
    (older,) = send(orm("XO", "O1", "O-C3", msh7="20250101125000", desc="older"))
    assert msa(newer) == ("AA", "") and msa(older) == ("AE", "207")
    assert b"older than the last change" in older and b"O-C2" in older
    assert _code_text(broker, "O1") == ["newer"]


def test_twenty_concurrent_xo_newest_wins(broker: Runtime) -> None:
    send = sender(broker)
    (nw,) = send(orm("NW", "CX1", "CX-NW", msh7="20250101120000"))
    assert msa(nw) == ("AA", "")
    xos = [
        orm(
            "XO",
            "CX1",
            f"CX-{i:02d}",
            msh7=f"202501011{3 + i // 60}{i % 60:02d}00",
            desc=f"v{i:02d}",
        )
        for i in range(20)
    ]
    random.Random(10).shuffle(xos)
    acks: dict[int, list[bytes]] = {}

    def connection(k: int) -> None:
        acks[k] = send(*xos[k::4])

    threads = [threading.Thread(target=connection, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    answers = [msa(a) for k in range(4) for a in acks[k]]
    assert len(answers) == 20
    assert set(answers) <= {("AA", ""), ("AE", "207")}
    refused = [a for k in range(4) for a in acks[k] if msa(a)[0] == "AE"]
    assert all(b"older than the last change" in a for a in refused)
    assert _code_text(broker, "CX1") == ["v19"]
    with broker.services.store.read() as tx:
        n_isr = tx.conn.execute(
            "SELECT COUNT(*) FROM resource WHERE res_type = 'ServiceRequest' AND deleted = 0"
        ).fetchone()[0]
    assert n_isr == 2  # one ISR and one RP: no twin from concurrent writers
