"""The MPPS SCP (Modality Performed Procedure Step SOP Class) on the worklist's AE and port.

A thin adapter: pynetdicom decodes N-CREATE / N-SET and calls these handlers in the
association's thread; they hand the data set to ``MppsService`` and map its outcome onto the
DIMSE status (PS3.4 F.7.2): 0000 on success, the refusal's status with an Error Comment (and,
for N-SET, the Attribute Identifier List; 0110 "may no longer be updated" carries Error ID
A710), 0110 with the error class for anything unexpected. A bad request never ends the
association or the listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt

from fhirmwl.errors import FhirMwlError
from fhirmwl.mpps.model import MPPS_SOP_CLASS, PROCESSING_FAILURE, MppsRefusal

LOG = logging.getLogger(__name__)
NO_SUCH_SOP_CLASS = 0x0118


def _failure(exc: MppsRefusal, with_attributes: bool) -> Dataset:
    status = Dataset()
    status.Status = exc.status
    status.ErrorComment = exc.comment[:64]
    if exc.error_id is not None:
        status.ErrorID = exc.error_id
    if with_attributes and exc.tags:
        status.AttributeIdentifierList = list(exc.tags)
    return status


def _unexpected(exc: Exception) -> MppsRefusal:
    """0110 naming the refusal (a store rule such as a profile) or just the error class."""
    text = exc.message if isinstance(exc, FhirMwlError) else type(exc).__name__
    return MppsRefusal(PROCESSING_FAILURE, text)


class MppsScp:
    """Handlers and presentation contexts the worklist SCP adds to its AE (``extensions``)."""

    sop_classes = (MPPS_SOP_CLASS,)

    def __init__(self, service: Callable[[], Any]) -> None:
        self.service = service  # → MppsService (looked up per request: installed after start)

    def handlers(self) -> list[tuple[Any, Callable[[evt.Event], Any]]]:
        return [(evt.EVT_N_CREATE, self.on_create), (evt.EVT_N_SET, self.on_set)]

    def on_create(self, event: evt.Event) -> tuple[int | Dataset, Dataset | None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        request: Any = event.request
        if request.AffectedSOPClassUID != MPPS_SOP_CLASS:
            return NO_SUCH_SOP_CLASS, None
        uid = str(request.AffectedSOPInstanceUID or "") or generate_uid(prefix="2.25.")
        reply = Dataset()
        if not request.AffectedSOPInstanceUID:
            reply.AffectedSOPInstanceUID = uid  # pynetdicom moves it into the response
        try:
            self.service().create(uid, event.attribute_list)
        except MppsRefusal as exc:
            LOG.warning("MPPS N-CREATE %s from %s refused: %s", uid, calling, exc.comment)
            return _failure(exc, False), None
        except Exception as exc:  # noqa: BLE001 - answer the peer, keep the listener
            LOG.exception("MPPS N-CREATE %s from %s failed", uid, calling)
            return _failure(_unexpected(exc), False), None
        return 0x0000, reply

    def on_set(self, event: evt.Event) -> tuple[int | Dataset, Dataset | None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        request: Any = event.request
        if request.RequestedSOPClassUID != MPPS_SOP_CLASS:
            return NO_SUCH_SOP_CLASS, None
        uid = str(request.RequestedSOPInstanceUID)
        try:
            step = self.service().update(uid, event.modification_list)
        except MppsRefusal as exc:
            LOG.warning("MPPS N-SET %s from %s refused: %s", uid, calling, exc.comment)
            return _failure(exc, True), None
        except Exception as exc:  # noqa: BLE001
            LOG.exception("MPPS N-SET %s from %s failed", uid, calling)
            return _failure(_unexpected(exc), True), None
        reply = Dataset()
        reply.PerformedProcedureStepStatus = step.state
        return 0x0000, reply
