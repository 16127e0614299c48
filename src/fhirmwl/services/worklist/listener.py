"""The DICOM worklist listener of ``fhirmwl serve``: the C-FIND SCP over the store's worklist."""

from __future__ import annotations

from typing import Any

from fhirmwl.dicom.admission import AssociationLimits, parse_peer_rules
from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP
from fhirmwl.security.tls import listener_context
from fhirmwl.services.worklist.source import StoreWorklistSource


def access_policy(settings: Any) -> AccessPolicy:
    allowed = frozenset(a.strip() for a in settings.dicom_allowed_aets.split(",") if a.strip())
    charsets = settings.extra.get("dicom_charsets", {})
    return AccessPolicy(
        allowed_calling_aets=allowed or None,
        restrict_to_own_station=settings.dicom_restrict_station,
        max_responses=settings.dicom_max_responses or None,
        response_charsets={str(k): str(v) for k, v in charsets.items()},
        peers=parse_peer_rules(settings.extra.get("dicom_peers")),
    )


def association_limits(settings: Any) -> AssociationLimits:
    return AssociationLimits(
        artim_timeout=float(settings.dicom_artim_timeout),
        idle_timeout=float(settings.dicom_idle_timeout),
        max_associations=settings.dicom_max_associations,
        max_per_peer=settings.dicom_max_associations_per_peer,
        require_called_aet=settings.dicom_require_called_aet,
    )


class DicomListener:
    name = "dicom"

    def __init__(self, services: Any) -> None:
        settings = services.settings
        store, retention = services.store, settings.worklist_retention_days
        self.scp = WorklistSCP(
            lambda: StoreWorklistSource(store, retention),
            settings.ae_title,
            settings.host,
            settings.dicom_port,
            access_policy(settings),
            shutdown_grace=float(settings.shutdown_grace),
            extensions=services.dicom_extensions,
            ssl_context=listener_context(settings, "dicom"),
            limits=association_limits(settings),
        )
        self.scp.find_wrappers += services.door_wrappers.get("dicom_find", [])
        self.scp.extra_handlers += services.door_wrappers.get("dicom_events", [])
        self.scp.dimse_wrappers += services.door_wrappers.get("dicom_dimse", [])
        self.scp.tls_failure_hooks += services.door_wrappers.get("dicom_tls_failure", [])

    def start(self) -> None:
        self.scp.start()

    def stop(self) -> None:
        self.scp.stop()
