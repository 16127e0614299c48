"""A small pynetdicom SCU used by the SCP tests (sets TCP_NODELAY like a good client)."""

from __future__ import annotations

import socket
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification
from tests.conftest import free_port as free_port  # the SCP tests import it from here


def associate(port: int, calling: str = "TESTSCU") -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    if assoc.is_established:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def find(assoc: Any, identifier: Dataset) -> tuple[list[Dataset], Dataset]:
    """All pending identifiers and the final status dataset."""
    results: list[Dataset] = []
    final = Dataset()
    for status, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
        if status is None:
            raise AssertionError("no response from SCP")
        if status.Status in (0xFF00, 0xFF01):
            results.append(ds)
        else:
            final = status
    return results, final
