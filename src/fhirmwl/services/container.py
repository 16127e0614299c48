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
    # Run by the composition root right after the migrations (work that needs a feature's own
    # tables at start-up: backfills, seeding rows).
    after_migrate: list[Callable[[], None]] = field(default_factory=list)
    # Listeners the runtime has started, in start order (readiness probe, graceful stop).
    running: list[Any] = field(default_factory=list)
    started: bool = False  # every listener the settings ask for is accepting
    # Decorators features put around a door's handler, by door: "mllp" wraps the
    # (frame, peer) -> ACK function, "dicom_find" the C-FIND generator; "dicom_events" holds
    # extra (pynetdicom event, handler) pairs. The audit trail uses them.
    door_wrappers: dict[str, list[Any]] = field(default_factory=dict)
    # ---- state features share (set by their install(), read by the doors) ----
    order_context: OrderContext | None = None  # services.orders.install_orders
    ingest_env: IngestEnv | None = None  # services.ingest_v2 (HL7 v2 intake)
    worklist_indexer: WorklistIndexer | None = None  # services.worklist
    worklist_source: StoreWorklistSource | None = None  # services.worklist: C-FIND, $mwl-query
    notify_hook: OutboxHook | None = None  # notify: the outbox write hook
    # resource type -> read-only registry served by the REST API (conformance, SubscriptionTopic)
    readonly_types: dict[str, Any] = field(default_factory=dict)
    supported_profiles: dict[str, list[str]] = field(default_factory=dict)  # for /metadata
    audit_writer: Any = None  # audit.recorder.AuditWriter: queued AuditEvents (reads, refusals)
    mpps: Any = None  # mpps.service.MppsService (DICOM MPPS N-CREATE/N-SET)
    ups_state: Any = None  # ups.state.UpsStateService (UPS-RS state changes)
    dicom_extensions: list[Any] = field(default_factory=list)  # more SOP classes on the DICOM AE
    auth: tuple[Any, Any] | None = None  # security: (token validator, built-in server) when on
    rest_security: dict[str, Any] | None = None  # CapabilityStatement.rest.security
    endpoint_policy: Any = None  # security.endpoints: where Subscriptions may deliver
    web_feed: Any = None  # web.live.ChangeFeed: the desk's live-update cursor
    desk_login: Any = None  # web.login.DeskLogin: the desk's OAuth client when auth is on

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
