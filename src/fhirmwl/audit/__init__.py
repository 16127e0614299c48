"""The audit trail: who read or changed which patient's orders, through every door.

``install(services)`` registers the append-only table, the write hook that records every change
in its own transaction, the queue writer for reads and refusals, the wrappers around the MLLP
and DICOM handlers, and (when ``audit_syslog`` is set) the syslog exporter. The HTTP middleware
and the ``/fhir/AuditEvent`` routes are mounted by ``api.app``. docs/audit.md has the catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhirmwl.audit import events as ev
from fhirmwl.audit.recorder import AccessContext, AuditHook, AuditWriter

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


class AuditService:
    """The runtime's listener for the audit trail: the queue writer plus start/stop events."""

    name = "audit"

    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer
        self.thread = writer.thread

    def start(self) -> None:
        self.writer.write_now(_application(ev.APPLICATION_START))
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()
        self.writer.write_now(_application(ev.APPLICATION_STOP))


def _application(code: ev.Code) -> ev.AuditRecord:
    ctx = AccessContext(
        door="system", action="E", category=ev.APPLICATION_ACTIVITY, code=code, agent_id="fhirmwl"
    )
    return ctx.record()


class AuditRegistry:
    """AuditEvent as the REST API and ``/metadata`` see it: read and search only (the routes in
    ``audit.http`` serve it; this describes it and answers the generic read-only path)."""

    search_param_names: tuple[str, ...] = ("_id", "date", "patient", "agent", "entity")
    search_param_names += ("code", "subtype", "action", "outcome", "source")
    search_param_types = {"date": "date", "patient": "reference", "entity": "reference"}

    def __init__(self, services: Services) -> None:
        self.services = services

    def get(self, rtype: str, res_id: str) -> dict[str, Any] | None:
        from fhirmwl.audit import store as audit_store

        with self.services.store.read() as tx:
            return audit_store.read(tx.conn, res_id)

    def search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        from fhirmwl.audit import store as audit_store

        with self.services.store.read() as tx:
            return audit_store.search(tx.conn, list(params.items()), 100)


def writer_of(services: Services) -> AuditWriter | None:
    writer = services.audit_writer
    return writer if isinstance(writer, AuditWriter) else None


def install(services: Services) -> None:
    from fhirmwl.audit import doors
    from fhirmwl.audit.store import register_migration
    from fhirmwl.audit.syslog import AuditExporter

    register_migration()
    services.readonly_types["AuditEvent"] = AuditRegistry(services)
    if not services.settings.audit or writer_of(services) is not None:
        return
    writer = AuditWriter(services.store)
    services.audit_writer = writer
    services.store.add_hook(AuditHook())
    services.closers.append(writer.drain)
    called = services.settings.ae_title
    wrappers = services.door_wrappers
    wrappers.setdefault("mllp", []).append(lambda h: doors.audited_mllp(h, writer))
    wrappers.setdefault("dicom_find", []).append(lambda h: doors.audited_find(h, writer, called))
    wrappers.setdefault("dicom_dimse", []).append(lambda h: doors.audited_dimse(h, writer, called))
    wrappers.setdefault("dicom_tls_failure", []).append(doors.tls_refused(writer, called))
    wrappers.setdefault("mllp_tls_failure", []).append(doors.tls_refused(writer, called, "mllp"))
    from pynetdicom import evt

    wrappers.setdefault("dicom_events", []).append(
        (evt.EVT_REJECTED, doors.association_rejected(writer, called))
    )
    factory: Any = lambda s: AuditService(writer)  # noqa: E731
    services.listener_factories.append(("audit", factory))
    services.listener_factories.append(("audit_syslog", AuditExporter))
