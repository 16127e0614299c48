"""The list of features: each capability (conformance, worklist index, orders, notifications,
v2 intake, the FHIR operations) installs its hooks, validators, guards, operations, listener
factories and migrations into the shared ``Services`` here, in one visible place and in order.

``fhirmwl.wiring`` (the composition root) calls ``install_all`` once, then runs the registered
migrations once. A feature's ``install`` registers and never migrates or starts anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def install_all(services: Services) -> None:
    """Install every feature, in dependency order; later issues append their ``install`` calls."""
    from fhirmwl import notify
    from fhirmwl.api import ops_orders, ops_validate
    from fhirmwl.services import orders, profiles, worklist

    profiles.install(services)  # conformance resources, profile validation on write
    ops_validate.install(services)  # $validate
    worklist.install(services)  # worklist index (write hook), DICOM C-FIND listener
    orders.install_orders(services)  # order lifecycle: Task guard, OrderContext
    ops_orders.install(services)  # $create-order, $update-order, $cancel-order
    notify.install(services)  # outbox, Subscriptions, $status/$events, dispatcher
    __import__("fhirmwl.services.ingest_v2", fromlist=["install"]).install(services)
    __import__("fhirmwl.api.ops_worklist", fromlist=["install"]).install(services)
    __import__("fhirmwl.mpps", fromlist=["install"]).install(services)
    __import__("fhirmwl.ups", fromlist=["install"]).install(services)
    __import__("fhirmwl.outbound", fromlist=["install"]).install(services)
    __import__("fhirmwl.ops.retention", fromlist=["install"]).install(services)
    __import__("fhirmwl.audit", fromlist=["install"]).install(services)
    __import__("fhirmwl.security", fromlist=["install"]).install(services)
    __import__("fhirmwl.security.endpoints", fromlist=["install"]).install(services)
    __import__("fhirmwl.web", fromlist=["install"]).install(services)
