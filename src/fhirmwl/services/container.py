"""The one set of services a process runs, as typed fields: built once by ``fhirmwl.wiring``
(the composition root) and shared by every door (HTTP, MLLP, DICOM, the command line).

Features installed by ``plugins.install_all`` fill the fields they own; a door reads them. This
module only describes the shape: it builds nothing and imports no feature, so the service layer
never depends on the doors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhirmwl.config import Settings
from fhirmwl.services.bundles import BundleProcessor
from fhirmwl.services.resources import ResourceService
from fhirmwl.store import Store

if TYPE_CHECKING:
    from fhirmwl.notify.outbox import OutboxHook
    from fhirmwl.services.ingest_v2.env import IngestEnv
    from fhirmwl.services.orders.context import OrderContext
    from fhirmwl.services.worklist.indexer import WorklistIndexer
    from fhirmwl.services.worklist.source import StoreWorklistSource


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
    # (settings flag name, factory) for listeners/background workers features add; the runtime
    # starts those whose flag is true (or unknown) after the HTTP listener.
    listener_factories: list[tuple[str, Callable[[Services], Any]]] = field(default_factory=list)
    # Called by Services.close() before the store closes (background threads, pools).
    closers: list[Callable[[], None]] = field(default_factory=list)
    # ---- state features share (set by their install(), read by the doors) ----
    order_context: OrderContext | None = None  # services.orders.install_orders
    ingest_env: IngestEnv | None = None  # services.ingest_v2 (HL7 v2 intake)
    worklist_indexer: WorklistIndexer | None = None  # services.worklist
    worklist_source: StoreWorklistSource | None = None  # services.worklist: C-FIND, $mwl-query
    notify_hook: OutboxHook | None = None  # notify: the outbox write hook
    # resource type -> read-only registry served by the REST API (conformance, SubscriptionTopic)
    readonly_types: dict[str, Any] = field(default_factory=dict)
    supported_profiles: dict[str, list[str]] = field(default_factory=dict)  # for /metadata

    def add_operation(self, op: Operation) -> None:
        self.operations[(op.level, op.resource_type, op.name)] = op

    def find_operation(self, level: str, resource_type: str | None, name: str) -> Operation | None:
        return self.operations.get((level, resource_type, name)) or self.operations.get(
            (level, None, name)
        )

    def worklist(self) -> StoreWorklistSource:
        """The worklist source (installed by ``services.worklist``)."""
        if self.worklist_source is None:
            raise RuntimeError("the worklist feature is not installed")
        return self.worklist_source

    def orders(self) -> OrderContext:
        """The order lifecycle context (installed by ``services.orders.install_orders``)."""
        if self.order_context is None:
            raise RuntimeError("the order feature is not installed")
        return self.order_context

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.store.close()
