"""MLLP transport: a pure framing codec, an asyncio listener and clients."""

from fhirmwl.mllp.client import MLLPClient, MLLPError, send_messages
from fhirmwl.mllp.framing import FrameDecoder, frame
from fhirmwl.mllp.server import Handler, MLLPServer, PeerInfo
from fhirmwl.mllp.threaded import ThreadedMLLPListener, sync_handler

__all__ = [
    "FrameDecoder",
    "Handler",
    "MLLPClient",
    "MLLPError",
    "MLLPServer",
    "PeerInfo",
    "ThreadedMLLPListener",
    "frame",
    "send_messages",
    "sync_handler",
]
