"""The one set of services a process runs: built once by ``runtime`` and shared by listeners."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirmwl.config import Settings
from fhirmwl.services.bundles import BundleProcessor
from fhirmwl.services.resources import ResourceService
from fhirmwl.store import Store, open_store


@dataclass
class Operation:
    """A FHIR operation handler: ``handler(services, request) -> (status, body, headers)``."""

    name: str
    level: str  # system | type | instance
    resource_type: str | None
    handler: Callable[..., Any]
    methods: tuple[str, ...] = ("POST",)
    definition: str | None = None  # canonical URL of the OperationDefinition


@dataclass
class Services:
    settings: Settings
    store: Store
    resources: ResourceService
    bundles: BundleProcessor
    operations: dict[tuple[str, str | None, str], Operation] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # (settings flag name, factory) for listeners/background workers features add; the runtime
    # starts those whose flag is true (or unknown) after the HTTP listener.
    listener_factories: list[tuple[str, Callable[[Services], Any]]] = field(default_factory=list)
    # Called by Services.close() before the store closes (background threads, pools).
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Listeners the runtime has started, in start order (readiness probe, graceful stop).
    running: list[Any] = field(default_factory=list)
    started: bool = False  # every listener the settings ask for is accepting
    # Decorators features put around a door's handler, by door: "mllp" wraps the
    # (frame, peer) -> ACK function, "dicom_find" the C-FIND generator; "dicom_events" holds
    # extra (pynetdicom event, handler) pairs. The audit trail uses them.
    door_wrappers: dict[str, list[Any]] = field(default_factory=dict)

    def add_operation(self, op: Operation) -> None:
        self.operations[(op.level, op.resource_type, op.name)] = op

    def find_operation(self, level: str, resource_type: str | None, name: str) -> Operation | None:
        return self.operations.get((level, resource_type, name)) or self.operations.get(
            (level, None, name)
        )

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.store.close()


def build_services(settings: Settings) -> Services:
    """Open the store and wire every service and plug-in the settings ask for."""
    store = open_store(settings.db, auto_migrate=False)
    resources = ResourceService(store)
    services = Services(settings, store, resources, BundleProcessor(resources))
    from fhirmwl import plugins
    from fhirmwl.store.migrations import migrate

    try:
        plugins.install_all(services)  # features register their hooks and migrations here
        migrate(store.db)
    except BaseException:
        store.close()
        raise
    return services
