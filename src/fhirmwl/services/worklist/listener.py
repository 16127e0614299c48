"""The DICOM worklist listener of ``fhirmwl serve``: the C-FIND SCP over the store's worklist."""

from __future__ import annotations

from typing import Any

from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP
from fhirmwl.services.worklist.source import StoreWorklistSource


def access_policy(settings: Any) -> AccessPolicy:
    allowed = frozenset(a.strip() for a in settings.dicom_allowed_aets.split(",") if a.strip())
    charsets = settings.extra.get("dicom_charsets", {})
    return AccessPolicy(
        allowed_calling_aets=allowed or None,
        restrict_to_own_station=settings.dicom_restrict_station,
        max_responses=settings.dicom_max_responses or None,
        response_charsets={str(k): str(v) for k, v in charsets.items()},
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
        )

    def start(self) -> None:
        self.scp.start()

    def stop(self) -> None:
        self.scp.stop()
