"""Outbound HL7 v2: RAD-4/RAD-13 order messages to Image Managers, RAD-3 status to Order Placers.

``install`` registers the delivery tables (migration 172) and, when ``[[hl7_destinations]]``
are configured, the cursor rows, a wake-up hook and the ``hl7_outbound`` listener
(``outbound.worker``). Messages come from the Subscriptions' durable outbox (``notify_event``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def install(services: Services) -> None:
    from fhirmwl.outbound.config import parse_destinations
    from fhirmwl.outbound.sender import OUTBOUND_MIGRATION, ensure_destinations
    from fhirmwl.outbound.worker import Hl7Outbound, WakeHook
    from fhirmwl.store.migrations import MIGRATIONS, register

    destinations = parse_destinations(services.settings.hl7_destinations)
    for dest in destinations:  # TLS files are read at start-up: a wrong one stops it here
        dest.tls_context()
    if not any(m.version == OUTBOUND_MIGRATION.version for m in MIGRATIONS):
        register(OUTBOUND_MIGRATION)  # applied by fhirmwl.wiring once every feature is installed
    if not destinations:
        return
    services.after_migrate.append(lambda: ensure_destinations(services.store, destinations))
    hook = WakeHook()
    services.store.add_hook(hook)
    services.listener_factories.append(
        ("hl7_outbound", lambda s: Hl7Outbound(s.store, destinations, hook))
    )
