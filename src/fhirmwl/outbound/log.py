"""Reading the outbound HL7 v2 log (``fhirmwl v2 log --outbound``), newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirmwl.errors import BadRequest
from fhirmwl.outbound.sender import STATUSES


@dataclass
class OutboundRecord:
    id: int
    created: str
    dest: str
    control_id: str
    event: str
    order_id: str
    message_type: str
    status: str
    attempts: int
    ack_code: str
    error: str | None


def recent(
    conn: Any,
    limit: int = 20,
    status: str | None = None,
    dest: str | None = None,
    order_id: str | None = None,
) -> list[OutboundRecord]:
    if status and status not in STATUSES:
        raise BadRequest(f"--status must be one of {', '.join(STATUSES)}")
    where, params = [], []
    for column, value in (("status", status), ("dest", dest), ("order_id", order_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT id, created, dest, control_id, event, order_id, message_type, status, attempts,"
        " ack_code, error FROM hl7_out_log"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY id DESC LIMIT ?"
    )
    rows = conn.execute(sql, (*params, limit)).fetchall()
    return [OutboundRecord(*r) for r in rows]


def print_log(services: Any, echo: Callable[[str], Any], **filters: Any) -> None:
    try:
        with services.store.read() as tx:
            rows = recent(tx.conn, **filters)
    except BadRequest as exc:
        echo(exc.message)
        raise SystemExit(2) from None
    finally:
        services.close()
    for r in rows:
        detail = f"  {r.error}" if r.error else ""
        echo(
            f"{r.id:>6}  {r.created}  {r.dest:<12} {r.control_id:<12} {r.message_type:<8} "
            f"{r.event:<20} {r.status:<9} {r.ack_code or '-':<3} x{r.attempts}  "
            f"ServiceRequest/{r.order_id}{detail}"
        )
