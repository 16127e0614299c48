"""HL7 v2 → FHIR R5 mapping (pure: no IO; clock, ids and policies come from `MappingContext`).

`map_message` dispatches on MSH-9: order messages (ORM^O01, OMG^O19, OMI^O23) give an
`OrderMessage` (transaction Bundle + per-group order control), ADT messages give an `AdtMessage`
(patient update / merge / identifier-change commands). Anything else raises `V2Unsupported`
(ACK AR, table 0357 code 200 or 201).
"""

from __future__ import annotations

from fhirmwl.hl7v2.errors import (
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    ErrorLocation,
    V2Unsupported,
)
from fhirmwl.hl7v2.message import V2Message
from fhirmwl.mapping.v2_to_fhir.adt import (
    ADT_TRIGGERS,
    AdtMessage,
    PatientCommand,
    PatientCommandKind,
    map_adt_message,
)
from fhirmwl.mapping.v2_to_fhir.context import (
    IdentifierSystems,
    MappingContext,
    MissingValue,
    MissingValuePolicy,
)
from fhirmwl.mapping.v2_to_fhir.order_control import OrderAction, order_control_outcome
from fhirmwl.mapping.v2_to_fhir.orders import OrderGroup, OrderMessage, map_order_message

ORDER_TRIGGERS = {"ORM": {"O01"}, "OMG": {"O19"}, "OMI": {"O23"}}


def map_message(msg: V2Message, ctx: MappingContext) -> OrderMessage | AdtMessage:
    """Map a parsed message; raises `V2Error` subclasses carrying the ACK code and ERR data."""
    code, trigger = msg.message_code, msg.trigger_event
    where = ErrorLocation("MSH", 1, 9)
    if code in ORDER_TRIGGERS:
        if trigger not in ORDER_TRIGGERS[code]:
            raise V2Unsupported(UNSUPPORTED_EVENT_CODE, f"{code}^{trigger} not supported", where)
        return map_order_message(msg, ctx)
    if code == "ADT":
        if trigger not in ADT_TRIGGERS:
            raise V2Unsupported(UNSUPPORTED_EVENT_CODE, f"ADT^{trigger} not supported", where)
        return map_adt_message(msg, ctx)
    raise V2Unsupported(UNSUPPORTED_MESSAGE_TYPE, f"message type {code} not supported", where)


__all__ = [
    "AdtMessage",
    "IdentifierSystems",
    "MappingContext",
    "MissingValue",
    "MissingValuePolicy",
    "OrderAction",
    "OrderGroup",
    "OrderMessage",
    "PatientCommand",
    "PatientCommandKind",
    "map_adt_message",
    "map_message",
    "map_order_message",
    "order_control_outcome",
]
