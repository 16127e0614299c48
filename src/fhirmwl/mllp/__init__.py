"""MLLP transport: a pure framing codec, an asyncio listener and clients."""

from fhirmwl.mllp.client import MLLPClient, MLLPError, send_messages
from fhirmwl.mllp.framing import FrameDecoder, frame
from fhirmwl.mllp.server import Handler, MLLPServer, PeerInfo

__all__ = [
    "FrameDecoder",
    "Handler",
    "MLLPClient",
    "MLLPError",
    "MLLPServer",
    "PeerInfo",
    "frame",
    "send_messages",
]
