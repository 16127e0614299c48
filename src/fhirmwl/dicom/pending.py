"""Send Pending C-FIND responses whose identifier is already encoded, straight to the socket.

Why not yield datasets to pynetdicom: its C-FIND service class encodes every identifier with
pydicom and re-encodes the same command set for every Pending response (measured: about 1 ms of
CPU per response on this project's 2-core host). All Pending responses of one request share one
command set (same Message ID Being Responded To, SOP class, status), so it is encoded once here
with pynetdicom's own message class.

Why not hand P-DATA primitives to pynetdicom's DUL either: its reactor takes one primitive per
loop turn, converts it into PDU objects, runs the state machine and makes one ``send`` system
call per PDU, sleeping 1 ms whenever its queue runs dry — with 1,000 responses that was most of
the answer's time. Here each response becomes P-DATA-TF bytes (``pdu``; command and identifier
share one PDU when both fit the peer's maximum PDU, otherwise the fragmentation of PS3.8
Annex D.1) and bursts of them go out in one ``sendall``. Still one DIMSE message per PDU:
pynetdicom-based peers decode only the first message of a P-DATA-TF.

Sharing the socket with the DUL thread: the DUL is idle while the handler runs (the request has
been received, the previous answer's final response was sent before the peer could ask again);
the sender waits until its queues are empty and then both write under one lock installed on the
association's socket, so bytes never interleave. The final status is still sent by pynetdicom
when the handler returns, after everything written here. Because the DUL is not busy sending, it
keeps reading incoming PDUs, so a C-CANCEL is seen while the answer goes out.
``EVT_DIMSE_SENT``/``EVT_PDU_SENT`` are not triggered for these responses. A write that fails
or stalls longer than the association's network timeout is reported to the DUL as a closed
transport (Evt17, as pynetdicom's own send does) and raises ``ConnectionError``.
"""

from __future__ import annotations

import threading
import time
from io import BytesIO
from math import ceil
from typing import Any

from pydicom.uid import UID
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from fhirmwl.dicom.pdu import PDV_HEADER, p_data_tf, pdv

COMMAND_MORE, COMMAND_LAST = b"\x01", b"\x03"
DATA_MORE, DATA_LAST = b"\x00", b"\x02"
MAX_BURST = 32  # responses written at once after the first ones (see flush)
IDLE_WAIT = 10.0  # seconds to wait for the DUL to send what it holds before writing


class PendingSender:
    """One per C-FIND request (``event`` is pynetdicom's ``EVT_C_FIND`` event). ``usable`` is
    false when the answer must go through pynetdicom (Big Endian, deflate, no socket)."""

    def __init__(self, event: Any, status: int) -> None:
        assoc = event.assoc
        self.dul = assoc.dul
        self.context_id = int(event.context.context_id)
        syntax = UID(event.context.transfer_syntax)
        self.implicit = bool(syntax.is_implicit_VR)
        self._socket = getattr(self.dul, "socket", None)
        raw = self._raw = getattr(self._socket, "socket", None)
        self.usable = bool(syntax.is_little_endian) and not syntax.is_deflated and raw is not None
        self._timeout = assoc.network_timeout
        rsp = C_FIND()
        rsp.MessageIDBeingRespondedTo = event.request.MessageID
        rsp.AffectedSOPClassUID = event.request.AffectedSOPClassUID
        rsp.Status = status
        rsp.Identifier = BytesIO(b"\x00")  # marks "data set present" in the command set
        message = C_FIND_RSP()
        message.primitive_to_message(rsp)
        command = encode(message.command_set, True, True)
        if command is None:
            raise RuntimeError("cannot encode the C-FIND-RSP command set")
        self.max_pdu = int(assoc.dimse.maximum_pdu_size)
        self._command = command
        self._command_pdus = self._fragment_pdus(command, COMMAND_MORE, COMMAND_LAST)
        self._command_pdv = pdv(self.context_id, COMMAND_LAST, command)
        self._buffer = bytearray()
        self._in_buffer = 0  # responses in the buffer
        self._burst = 1
        self._lock: threading.Lock | None = None

    def _fragment_pdus(self, data: bytes, more: bytes, last: bytes) -> bytes:
        size = len(data) or 1
        if self.max_pdu:
            size = self.max_pdu - PDV_HEADER
        count = max(1, ceil(len(data) / size))
        return b"".join(
            p_data_tf(
                pdv(
                    self.context_id,
                    last if i == count - 1 else more,
                    data[i * size : (i + 1) * size],
                )
            )
            for i in range(count)
        )

    def send(self, identifier: bytes) -> None:
        """Queue one Pending C-FIND-RSP carrying ``identifier`` (encoded per the context)."""
        together = len(self._command_pdv) + PDV_HEADER + len(identifier)  # the PDU's PDV items
        if self.max_pdu == 0 or together <= self.max_pdu:
            self._buffer += p_data_tf(
                self._command_pdv, pdv(self.context_id, DATA_LAST, identifier)
            )
        else:
            self._buffer += self._command_pdus
            self._buffer += self._fragment_pdus(identifier, DATA_MORE, DATA_LAST)
        self._in_buffer += 1
        if self._in_buffer >= self._burst:
            self.flush()
            self._burst = min(self._burst * 2, MAX_BURST)

    def flush(self) -> None:
        """Write the buffered responses. Call before yielding anything to pynetdicom (its
        messages must come after ours) and when the answer is complete. The first response goes
        out at once, then bursts of 2, 4 … 32: the peer sees the first item without waiting for
        a burst, and later writes carry many PDUs per system call."""
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        self._in_buffer = 0
        self._write(data)

    def drain(self) -> None:
        """Write what is buffered (the DUL keeps reading incoming PDUs meanwhile, so a
        C-CANCEL is noticed between bursts)."""
        self.flush()

    def _write(self, data: bytes) -> None:
        lock = self._lock or self._take_socket()
        raw = self._raw
        assert raw is not None  # only usable senders write
        try:
            with lock:
                previous = raw.gettimeout()
                raw.settimeout(self._timeout)
                try:
                    raw.sendall(data)
                finally:
                    raw.settimeout(previous)
        except OSError as exc:
            self.dul.event_queue.put("Evt17")  # transport closed, as pynetdicom's send does
            raise ConnectionError(f"sending C-FIND responses failed: {exc}") from exc

    def _take_socket(self) -> threading.Lock:
        """Wait until the DUL holds nothing to send, then share the socket under one lock."""
        deadline = time.monotonic() + IDLE_WAIT
        while (
            self.dul.to_provider_queue.qsize() or self.dul.event_queue.qsize()
        ) and time.monotonic() < deadline:
            time.sleep(0.0002)
        self._lock = shared_send_lock(self._socket)
        return self._lock


def shared_send_lock(assoc_socket: Any) -> threading.Lock:
    """The lock every write to this association's socket takes (installed once: pynetdicom's
    ``AssociationSocket.send`` is wrapped to take it too)."""
    lock: threading.Lock | None = getattr(assoc_socket, "_fhirmwl_send_lock", None)
    if lock is not None:
        return lock
    lock = threading.Lock()
    original = assoc_socket.send

    def send(bytestream: bytes) -> None:
        with lock:
            original(bytestream)

    assoc_socket.send = send
    assoc_socket._fhirmwl_send_lock = lock
    return lock
