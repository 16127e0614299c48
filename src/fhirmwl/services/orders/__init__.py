"""The order lifecycle shared by the FHIR order operations and the HL7 v2 intake.

Entry points (each takes an open ``Tx`` from ``Store.write()`` and an ``OrderContext``):
``create_order``, ``update_order``, ``cancel_order``, ``change_step_status``, ``hold_order``,
``release_order``; ``order_control_action`` maps (ORC-1, ORC-5) to the call to make.
``install_orders(services)`` wires the schema, the Task status guard and the context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fhirmwl.services.orders.catalogue import Catalogue, load_catalogue, parse_catalogue
from fhirmwl.services.orders.context import (
    OrderContext,
    OrderResult,
    OrderSettings,
    default_uid_factory,
)
from fhirmwl.services.orders.lifecycle import (
    cancel_order,
    change_step_status,
    create_order,
    hold_order,
    release_order,
    update_order,
)
from fhirmwl.services.orders.pipeline import OrderTransactionHook
from fhirmwl.services.orders.status import order_control_action, task_status_guard

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def install_orders(services: Services) -> OrderContext:
    """Schema, Task guard and the shared ``OrderContext`` (``services.order_context``)."""
    from fhirmwl.services.orders import clock, ids

    ids.register_migrations()  # applied by fhirmwl.wiring once every feature is installed
    clock.register_migrations()
    if task_status_guard not in services.resources.guards:
        services.resources.guards.append(task_status_guard)
    settings = services.settings
    ctx = OrderContext(
        catalogue=load_catalogue(settings.catalogue),
        settings=OrderSettings.from_extra(settings.extra),
        base=settings.fhir_base,
        uid_factory=default_uid_factory(settings.uid_root),
        resources=services.resources,
        bundles=services.bundles,
        timezone=ZoneInfo(settings.timezone),
    )
    indexer = services.worklist_indexer
    if indexer is not None:
        ctx.indexer, ctx.worklist_statuses = indexer, indexer.ctx.worklist_statuses
    if services.bundles.order_hook is None:
        services.bundles.order_hook = OrderTransactionHook(ctx)
    services.order_context = ctx
    return ctx


__all__ = [
    "Catalogue",
    "OrderContext",
    "OrderResult",
    "OrderSettings",
    "cancel_order",
    "change_step_status",
    "create_order",
    "hold_order",
    "install_orders",
    "load_catalogue",
    "order_control_action",
    "parse_catalogue",
    "release_order",
    "update_order",
]
