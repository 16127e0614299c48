"""HL7 v2 message handling: decoding, parsing and acknowledgements (no IO)."""

from fhirmwl.hl7v2.ack import AckError, build_ack, encode_ack
from fhirmwl.hl7v2.errors import ErrorLocation, V2Error, V2Reject, V2Unsupported
from fhirmwl.hl7v2.message import Delimiters, Segment, V2Message, parse_message, unescape

__all__ = [
    "AckError",
    "Delimiters",
    "ErrorLocation",
    "Segment",
    "V2Error",
    "V2Message",
    "V2Reject",
    "V2Unsupported",
    "build_ack",
    "encode_ack",
    "parse_message",
    "unescape",
]
