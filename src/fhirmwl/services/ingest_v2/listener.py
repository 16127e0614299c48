"""Wire the v2 intake into a process: schema, environment and the MLLP listener factory.

``install(services)`` is called once from ``fhirmwl.plugins``; the runtime then starts the MLLP
listener when ``settings.mllp`` is true (``fhirmwl serve --mllp-port``). The listener hands each
frame to ``ingest`` on a small thread pool and writes back the ACK it returns, which is only
produced after the message's changes are committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhirmwl.mllp import PeerInfo, ThreadedMLLPListener
from fhirmwl.ops.logs import CONTEXT, bind
from fhirmwl.ops.metrics import timed_mllp
from fhirmwl.security.tls import listener_context
from fhirmwl.services.ingest_v2 import log
from fhirmwl.services.ingest_v2.env import IngestEnv, mapping_context
from fhirmwl.services.ingest_v2.group import GroupCommit

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def mllp_listener(services: Services) -> ThreadedMLLPListener:
    from fhirmwl.services.ingest_v2.service import ingest

    settings = services.settings

    @timed_mllp
    def handle(raw: bytes, peer: PeerInfo) -> bytes:
        token = bind(
            door="mllp", peer=f"{peer.host}:{peer.port}", connection=str(peer.connection_id)
        )
        try:
            return ingest(services, raw, peer)
        finally:
            CONTEXT.reset(token)

    for wrap in services.door_wrappers.get("mllp", []):
        handle = wrap(handle)
    listener = ThreadedMLLPListener(
        handle,
        settings.host,
        settings.mllp_port,
        max_message_bytes=settings.mllp_max_message_bytes,
        idle_timeout=float(settings.mllp_idle_timeout),
        workers=settings.mllp_workers,
        shutdown_grace=float(settings.shutdown_grace),
        ssl=listener_context(settings, "mllp"),
        max_connections=settings.mllp_max_connections,
        max_per_peer=settings.mllp_max_connections_per_peer,
    )
    listener.server.tls_failure_hooks += services.door_wrappers.get("mllp_tls_failure", [])
    return listener


def install(services: Services) -> IngestEnv:
    """Schema, the shared environment (``services.ingest_env``) and the listener."""
    from fhirmwl.services import orders

    log.register_migrations()  # applied by fhirmwl.wiring once every feature is installed
    ctx = services.order_context or orders.install_orders(services)
    v2 = services.settings.extra.get("v2") or {}
    env = IngestEnv(services, mapping_context(services.settings), ctx)
    if services.store.db.dialect == "sqlite":  # one writer: concurrent messages share a commit
        env.group = GroupCommit(services.store)
    if v2.get("default_modality") and "default_modality" not in (
        services.settings.extra.get("orders") or {}
    ):  # the earlier [v2] spelling of [orders] default_modality
        ctx.settings.default_modality = str(v2["default_modality"])
    services.ingest_env = env
    if not any(name == "mllp" for name, _ in services.listener_factories):
        services.listener_factories.append(("mllp", mllp_listener))
    return env
