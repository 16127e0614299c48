"""``ingest``: one inbound HL7 v2 message in, its ACK out, with the ACK sent only after commit.

Steps: parse and map (``intake.evaluate``, never raises) → refused input is logged and answered
AR/AE at once → a retransmission (same MSH-10 from the same MSH-3/MSH-4 as an applied message)
gets the stored ACK again and changes nothing → otherwise one ``Store.write()`` unit of work
applies the message and writes its log row, and only after the commit is the AA returned. A
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
from fhirmwl.services.ingest_v2 import log
from fhirmwl.services.ingest_v2.adt_apply import apply_adt
from fhirmwl.services.ingest_v2.env import IngestEnv, environment
from fhirmwl.services.ingest_v2.orders_apply import apply_order_message

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


def _stored_ack(env: IngestEnv, key: str) -> bytes | None:
    try:
        with env.store.read() as tx:
            return log.stored_ack(tx.conn, key)
    except Exception:  # noqa: BLE001 - the write below will report the store failure
        return None


def _apply(env: IngestEnv, result: IntakeResult, rec: log.LogRecord, key: str) -> bytes:
    mapped = result.mapped
    with env.store.write() as tx:
        if isinstance(mapped, OrderMessage):
            notes = apply_order_message(tx, mapped, env)
        else:
            assert mapped is not None
            notes = apply_adt(tx, mapped, env)
        rec.touched = [f"{t}/{i}" for t, i in dict.fromkeys(tx.touched)]
        rec.status, rec.dedupe_key = log.APPLIED, key
        rec.error = "; ".join(notes) or None
        log.insert(tx.conn, rec)
    logger.info(
        "v2 %s %s applied: %d resources", rec.message_type, rec.control_id, len(rec.touched)
    )
    return result.ack


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
        rec.sending_application, rec.sending_facility, rec.control_id, rec.message_type
    )
    for attempt in (1, 2):
        stored = _stored_ack(env, key)
        if stored is not None:
            rec.status, rec.ack = log.DUPLICATE, stored
            _log_alone(env, rec)
            return stored
        try:
            return _apply(env, result, rec, key)
        except DuplicateIdentifier as exc:
            if attempt == 2:  # not a twin of this very message: a real key clash
                return _refuse(env, result, rec, _as_v2_error(exc), log.REFUSED)
        except StoreError:
            logger.exception("v2 message %s: store failure", rec.control_id)
            break
        except FhirMwlError as exc:
            return _refuse(env, result, rec, _as_v2_error(exc), log.REFUSED)
        except Exception:  # noqa: BLE001 - store or programming failure: AE 207, nothing applied
            logger.exception("v2 message %s: store failure", rec.control_id)
            break
    error = V2Error(
        APPLICATION_INTERNAL_ERROR, "store failure: the message was not applied; resend it"
    )
    return _refuse(env, result, rec, error, log.FAILED)
