"""``ingest``: one inbound HL7 v2 message in, its ACK out, with the ACK sent only after commit.

Steps: parse and map (``intake.evaluate``, never raises) → refused input is logged and answered
AR/AE at once → a retransmission (same MSH-10 from the same MSH-3/MSH-4 with the same content as
an applied message) gets the stored ACK again and changes nothing; the same MSH-10 with other
content is a new message (processed, logged with a warning) → otherwise one ``Store.write()``
unit of work hands the order commands to the order service (``services.orders.control``; this
door writes no order itself) or applies the ADT, writes the log row, and only after the commit
is the AA returned, with an ERR severity W per finding (a step not on the worklist, a replaced
value, a repaired character set). A
refusal found while applying (stale message, order not known, business rule) or a store failure
rolls the unit of work back, so nothing is half-applied; the message is then logged in a small
transaction of its own and answered AE (table 0357 code with the reason; 207 for a store
failure).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fhirmwl.errors import DuplicateIdentifier, FhirMwlError, NotFound, StoreError
from fhirmwl.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    DUPLICATE_KEY_IDENTIFIER,
    UNKNOWN_KEY_IDENTIFIER,
    V2Error,
)
from fhirmwl.mapping.v2_to_fhir import OrderMessage
from fhirmwl.mapping.v2_to_fhir.intake import IntakeResult, ack_for_error, evaluate
from fhirmwl.mllp import PeerInfo
from fhirmwl.services.ingest_v2 import answer, log
from fhirmwl.services.ingest_v2.adt_apply import apply_adt
from fhirmwl.services.ingest_v2.env import IngestEnv, environment
from fhirmwl.services.orders.control import apply_order_control
from fhirmwl.services.resources import built_by_broker
from fhirmwl.store import Tx

if TYPE_CHECKING:
    from fhirmwl.services.container import Services

logger = logging.getLogger("fhirmwl.v2")


def _record(
    raw: bytes, result: IntakeResult, peer: PeerInfo | None, env: IngestEnv
) -> log.LogRecord:
    msg = result.message
    where = f"{peer.host}:{peer.port}#{peer.connection_id}" if peer else "local"
    return log.LogRecord(
        received_at=env.now(),
        peer=where,
        sending_application=msg.msh.comp(3) if msg else "",
        sending_facility=msg.msh.comp(4) if msg else "",
        control_id=msg.control_id if msg else "",
        message_type=f"{msg.message_code}^{msg.trigger_event}" if msg else "",
        status=log.REJECTED,
        ack_code=result.ack_code,
        raw=raw,
        ack=result.ack,
        touched=[],
        error=result.error.message if result.error else None,
    )


def _log_alone(env: IngestEnv, rec: log.LogRecord) -> None:
    """A log row in its own small transaction; a store that is down only costs the row."""
    try:
        with env.store.write() as tx:
            log.insert(tx.conn, rec)
    except Exception:  # noqa: BLE001 - the ACK must still go out
        logger.exception("v2 message %s: could not write the message log", rec.control_id)
    logger.info(
        "v2 %s %s from %s: %s %s",
        rec.message_type,
        rec.control_id,
        rec.sending_application,
        rec.status,
        rec.ack_code,
    )


def _earlier(tx: Tx, key: str, rec: log.LogRecord, notes: list[str]) -> bytes | None:
    """The stored ACK of a retransmission; a reused control id is noted (and logged)."""
    stored, reused = log.earlier(tx.conn, key, rec)
    if stored is None and reused and not notes:
        logger.warning(
            "v2 %s %s from %s: control id reused with different content (earlier: log "
            "row %s); processed as a new message",
            rec.message_type, rec.control_id, rec.sending_application, reused,
        )  # fmt: skip
        notes.append(f"MSH-10 {rec.control_id} reused with different content (log {reused})")
    return stored


def _apply(
    env: IngestEnv, result: IntakeResult, rec: log.LogRecord, key: str, notes: list[str]
) -> bytes:
    """The message's unit of work: alone, or in a group commit (SQLite, ``ingest_v2.group``)."""

    def work(tx: Tx) -> bytes:
        with built_by_broker():
            return _apply_in(tx, env, result, rec, key, notes)

    if env.group is not None:
        ack: bytes = env.group.run(work)
    else:
        with env.store.write() as tx:  # the duplicate check shares the unit of work
            ack = work(tx)
    logger.info(
        "v2 %s %s %s: %d resources",
        rec.message_type, rec.control_id, rec.status, len(rec.touched),
    )  # fmt: skip
    return ack


def _apply_in(
    tx: Tx,
    env: IngestEnv,
    result: IntakeResult,
    rec: log.LogRecord,
    key: str,
    notes: list[str],
) -> bytes:
    mapped, message = result.mapped, result.message
    assert message is not None and mapped is not None
    warnings = answer.message_errors(message)
    stored = _earlier(tx, key, rec, notes)
    if stored is not None:
        rec.status, rec.ack = log.DUPLICATE, stored
        log.insert(tx.conn, rec)
        return stored
    if isinstance(mapped, OrderMessage):
        control = apply_order_control(tx, mapped, env.orders)
        notes = [*notes, *control.notes]
        warnings += answer.finding_errors(control.findings, message, mapped)
    else:
        notes = [*notes, *apply_adt(tx, mapped, env)]
    ack = result.ack
    if warnings:
        control_id = f"ACK{env.mapping.new_uuid().hex[:16].upper()}"
        ack = answer.accept(message, warnings, control_id, env.mapping.clock)
        notes += [f"W {e.location or ''}: {e.text}" for e in warnings]
    rec.touched = [f"{t}/{i}" for t, i in dict.fromkeys(tx.touched)]
    rec.status, rec.dedupe_key, rec.ack = log.APPLIED, key, ack
    rec.error = "; ".join(notes) or None
    log.insert(tx.conn, rec)
    return ack


def _refuse(
    env: IngestEnv, result: IntakeResult, rec: log.LogRecord, error: V2Error, status: str
) -> bytes:
    control = f"ACK{env.mapping.new_uuid().hex[:16].upper()}"
    ack = ack_for_error(result.message, error, control, env.mapping.clock)
    rec.status, rec.ack_code, rec.ack, rec.error = status, error.ack_code, ack, error.message
    rec.touched, rec.dedupe_key = [], None
    _log_alone(env, rec)
    return ack


def _as_v2_error(exc: FhirMwlError) -> V2Error:
    if isinstance(exc, V2Error):
        return exc
    if isinstance(exc, DuplicateIdentifier):
        return V2Error(DUPLICATE_KEY_IDENTIFIER, exc.message)
    if isinstance(exc, NotFound):
        return V2Error(UNKNOWN_KEY_IDENTIFIER, exc.message)
    return V2Error(APPLICATION_INTERNAL_ERROR, exc.message[:400])


def ingest(services: Services, raw: bytes, peer: PeerInfo | None = None) -> bytes:
    """Process one message (MLLP payload, no framing) and return the encoded ACK."""
    env = environment(services)
    result = evaluate(raw, env.mapping)
    rec = _record(raw, result, peer, env)
    if result.mapped is None:
        _log_alone(env, rec)
        return result.ack
    key = log.dedupe_key(
        rec.sending_application, rec.sending_facility, rec.control_id, rec.message_type, raw
    )
    notes: list[str] = []
    for attempt in (1, 2):
        try:
            return _apply(env, result, rec, key, notes)
        except DuplicateIdentifier as exc:
            if attempt == 2:  # not a twin of this very message: a real key clash
                return _refuse(env, result, rec, _as_v2_error(exc), log.REFUSED)
        except StoreError:
            logger.exception("v2 message %s: store failure", rec.control_id)
            break
        except FhirMwlError as exc:
            located = answer.refusal(exc, result.message, result.mapped)
            return _refuse(env, result, rec, located or _as_v2_error(exc), log.REFUSED)
        except Exception:  # noqa: BLE001 - store or programming failure: AE 207, nothing applied
            logger.exception("v2 message %s: store failure", rec.control_id)
            break
    error = V2Error(
        APPLICATION_INTERNAL_ERROR, "store failure: the message was not applied; resend it"
    )
    return _refuse(env, result, rec, error, log.FAILED)
