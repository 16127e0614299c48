"""Order notifications as FHIR R5 topic-based Subscriptions (RAD-3, RAD-4/RAD-13 over FHIR).

``install`` registers the outbox schema and write hook, the read-only SubscriptionTopic
resources, the Subscription checks, ``$status``/``$events`` and the dispatcher worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


def install(services: Services) -> None:
    from fhirmwl.notify import ops
    from fhirmwl.notify.dispatcher import Dispatcher
    from fhirmwl.notify.outbox import OUTBOX_MIGRATION, PENDING_MIGRATION, OutboxHook
    from fhirmwl.notify.topics import TopicRegistry
    from fhirmwl.services.container import Operation
    from fhirmwl.store.migrations import MIGRATIONS, register

    for migration in (OUTBOX_MIGRATION, PENDING_MIGRATION):
        if not any(m.version == migration.version for m in MIGRATIONS):
            register(migration)  # applied by fhirmwl.wiring once every feature is installed
    hook = OutboxHook()
    services.store.add_hook(hook)
    services.notify_hook = hook
    services.readonly_types["SubscriptionTopic"] = TopicRegistry()
    services.resources.validators.append(ops.subscription_validator)
    for name, handler in (("status", ops.status_op), ("events", ops.events_op)):
        services.add_operation(
            Operation(
                name,
                "instance",
                "Subscription",
                handler,
                methods=("GET", "POST"),
                definition=f"http://hl7.org/fhir/OperationDefinition/Subscription-{name}",
            )
        )
    base = services.settings.fhir_base
    section = services.settings.extra.get("notify") or {}
    max_events = int(section.get("max_events", 50))  # events per notification Bundle
    services.listener_factories.append(
        (
            "notify",
            lambda s: Dispatcher(
                s.store,
                hook,
                base,
                max_events=max_events,
                endpoint_check=getattr(s.endpoint_policy, "problem", None),
            ),
        )
    )
