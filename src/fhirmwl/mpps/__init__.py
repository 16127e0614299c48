"""Modality Performed Procedure Step: modality feedback that moves the scheduled steps.

``install`` registers the ``mpps`` table (migration 170), the ``MppsService`` over the order
service (``services.mpps``), the MPPS SOP Class on the worklist SCP's AE
(``services.dicom_extensions``) and the write hook that matches unscheduled performed
steps once their order is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from fhirmwl.services.container import Services


class _CatchUp:
    """Listener that matches performed steps left unmatched by a crash between commit and the
    after-commit match (runs once at start-up)."""

    name = "mpps"

    def __init__(self, run: Any) -> None:
        self.run = run

    def start(self) -> None:
        self.run()

    def stop(self) -> None:
        return None


def install(services: Services) -> None:
    from fhirmwl.dicom.mpps import MppsScp
    from fhirmwl.mpps.service import MPPS_MIGRATION, MppsService, PendingMatcher
    from fhirmwl.store.migrations import MIGRATIONS, register

    if not any(m.version == MPPS_MIGRATION.version for m in MIGRATIONS):
        register(MPPS_MIGRATION)  # applied by fhirmwl.wiring once every feature is installed
    service = MppsService(services.store, services.orders(), ZoneInfo(services.settings.timezone))
    services.mpps = service
    services.dicom_extensions.append(MppsScp(lambda: service))
    matcher = PendingMatcher(service)
    services.store.add_hook(matcher)
    services.listener_factories.append(("mpps", lambda s: _CatchUp(matcher.run)))
