"""Feature wiring: each capability (conformance, worklist index, v2 intake, orders) installs its
hooks, validators and operations into the shared ``Services`` here, in one visible place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def install_all(services: Services) -> None:
    """Install every feature; later issues append their ``install`` calls."""
    from fhirmwl.services import profiles

    profiles.install(services)
    from fhirmwl.services import worklist

    worklist.install(services)
    from fhirmwl.api import ops_orders

    ops_orders.install(services)
    __import__("fhirmwl.services.ingest_v2", fromlist=["install"]).install(services)
    __import__("fhirmwl.api.ops_worklist", fromlist=["install"]).install(services)
    __import__("fhirmwl.web", fromlist=["install"]).install(services)
