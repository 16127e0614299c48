"""What the modalities and the outbound HL7 destinations said about an order, for the desk.

The order page lists the performed procedure steps (the FHIR ``Procedure`` resources the MPPS
service records, ``basedOn`` the order's Requested Procedures, with the series and instance
counts of the ImagingStudy that is ``partOf`` each one) and the order's outbound HL7 v2
messages (``hl7_out_log``); the status page gets each destination's queue (pending and rejected
counts, last error). Plain rows for the templates; all text goes through Jinja2 autoescape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirmwl.services.orders.graph import OrderGraph, referencing
from fhirmwl.store import Tx

MAX_OUTBOUND = 50
PPS_ID_SYSTEM = "urn:fhirmwl:pps-id"  # the Procedure identifier mpps.model gives the PPS ID


@dataclass(frozen=True)
class PerformedRow:
    """One performed procedure step (an MPPS N-CREATE and its N-SETs)."""

    procedure_id: str
    status: str
    modality: str
    station: str
    start: str
    end: str
    description: str
    pps_id: str
    reason: str
    series: int | None  # from the ImagingStudy partOf this Procedure; None: none reported
    instances: int | None


@dataclass(frozen=True)
class OutboundRow:
    """One outbound HL7 v2 message of the order (``fhirmwl v2 log --outbound``)."""

    dest: str
    event: str
    message_type: str
    control_id: str
    status: str
    ack_code: str
    error: str
    attempts: int
    created: str
    sent: str


@dataclass(frozen=True)
class DestinationRow:
    """One outbound destination's queue for the status page."""

    name: str
    pending: int
    rejected: int
    accepted: int
    last_error: str


def concept_text(concept: dict[str, Any] | None) -> str:
    """``text`` of a CodeableConcept, else its first coding's display or code."""
    if not concept:
        return ""
    coding = (concept.get("coding") or [{}])[0]
    return str(concept.get("text") or coding.get("display") or coding.get("code") or "")


def _counts(studies: list[dict[str, Any]], ref: str) -> tuple[int | None, int | None]:
    """Series and instances this Procedure reported on its ImagingStudy (per-series counts)."""
    series = instances = None
    for study in studies:
        if not any(p.get("reference") == ref for p in study.get("partOf") or []):
            continue
        rows = study.get("series") or []
        series = (series or 0) + len(rows)
        instances = (instances or 0) + sum(int(s.get("numberOfInstances") or 0) for s in rows)
    return series, instances


def performed_steps(tx: Tx, graph: OrderGraph) -> list[PerformedRow]:
    """The order's performed procedure steps, oldest start first."""
    rp_ids = [s.res_id for s in graph.rps] or [graph.isr.res_id]
    studies = [s.resource() for s in graph.studies if s.content]
    rows = []
    for stored in tx.read_many(referencing(tx, rp_ids, "Procedure")):
        if not stored.content:
            continue
        proc = stored.resource()
        period = proc.get("occurrencePeriod") or {}
        category = ((proc.get("category") or [{}])[0].get("coding") or [{}])[0]
        actor = ((proc.get("performer") or [{}])[0]).get("actor") or {}
        ids = {str(i.get("system")): str(i.get("value")) for i in proc.get("identifier") or []}
        series, instances = _counts(studies, f"Procedure/{stored.res_id}")
        rows.append(
            PerformedRow(
                procedure_id=stored.res_id,
                status=str(proc.get("status") or ""),
                modality=str(category.get("code") or ""),
                station=str(actor.get("display") or actor.get("reference") or ""),
                start=str(period.get("start") or ""),
                end=str(period.get("end") or ""),
                description=concept_text(proc.get("code")),
                pps_id=ids.get(PPS_ID_SYSTEM, ""),
                reason=concept_text(proc.get("statusReason")),
                series=series,
                instances=instances,
            )
        )
    return sorted(rows, key=lambda r: (r.start, r.procedure_id))


def order_outbound(tx: Tx, isr_id: str) -> list[OutboundRow]:
    """The newest outbound messages of the order, in event order."""
    rows = tx.conn.execute(
        "SELECT dest, event, message_type, control_id, status, ack_code, COALESCE(error, ''),"
        " attempts, created, COALESCE(sent, '') FROM hl7_out_log WHERE order_id = ?"
        " ORDER BY event_no DESC, dest LIMIT ?",
        (isr_id, MAX_OUTBOUND),
    ).fetchall()
    return [
        OutboundRow(
            dest=str(r[0]),
            event=str(r[1]),
            message_type=str(r[2]),
            control_id=str(r[3]),
            status=str(r[4]),
            ack_code=str(r[5]),
            error=str(r[6]),
            attempts=int(r[7]),
            created=str(r[8]),
            sent=str(r[9]),
        )
        for r in reversed(rows)
    ]


def outbound_status(tx: Tx) -> list[DestinationRow]:
    """Every destination that has a delivery cursor, with its queue counts and last error."""
    counts: dict[tuple[str, str], int] = {
        (str(d), str(s)): int(n)
        for d, s, n in tx.conn.execute(
            "SELECT dest, status, COUNT(*) FROM hl7_out_log GROUP BY dest, status"
        ).fetchall()
    }
    out = []
    for name, error in tx.conn.execute(
        "SELECT name, last_error FROM hl7_out_dest ORDER BY name"
    ).fetchall():
        if not error:  # no failure now: the newest refusal (AE/AR after max_attempts), if any
            row = tx.conn.execute(
                "SELECT error FROM hl7_out_log WHERE dest = ? AND status = 'rejected'"
                " ORDER BY event_no DESC LIMIT 1",
                (name,),
            ).fetchone()
            error = row[0] if row else ""
        key = str(name)
        out.append(
            DestinationRow(
                key,
                counts.get((key, "pending"), 0),
                counts.get((key, "rejected"), 0),
                counts.get((key, "accepted"), 0),
                str(error or ""),
            )
        )
    return out
