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
On TLS associations the socket is not shared: OpenSSL does not allow one connection to be read
and written from two threads at once, and the DUL thread reads while the answer is written. There
the same PDUs are handed to the DUL as P-DATA primitives (in bursts; ``drain`` then waits until
they are sent and gives the DUL a turn to read a C-CANCEL).
``EVT_DIMSE_SENT``/``EVT_PDU_SENT`` are not triggered for these responses. A write that fails
or stalls longer than the association's network timeout is reported to the DUL as a closed
transport (Evt17, as pynetdicom's own send does) and raises ``ConnectionError``.
"""

from __future__ import annotations

import ssl
import threading
import time
from io import BytesIO
from math import ceil
from typing import Any

from pydicom.uid import UID
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

from fhirmwl.dicom.pdu import PDV_HEADER, p_data_tf, pdv

COMMAND_MORE, COMMAND_LAST = b"\x01", b"\x03"
DATA_MORE, DATA_LAST = b"\x00", b"\x02"
MAX_BURST = 32  # responses written at once after the first ones (see flush)
IDLE_WAIT = 10.0  # seconds to wait for the DUL to send what it holds before writing
DUL_TURN = 0.002  # pynetdicom's DUL sleeps 1 ms when idle; let it read the socket once
Pdu = list[tuple[bytes, bytes]]  # the (message control header, fragment) PDVs of one PDU


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
        self._primitives: list[P_DATA] = []  # TLS: what goes to the DUL instead
        self._through_dul = isinstance(raw, ssl.SSLSocket)
        self._in_buffer = 0  # responses in the buffer
        self._burst = 1
        self._lock: threading.Lock | None = None

    def _fragments(self, data: bytes, more: bytes, last: bytes) -> list[Pdu]:
        """PS3.8 Annex D.1: one PDU per fragment of at most the peer's maximum PDU."""
        size = self.max_pdu - PDV_HEADER if self.max_pdu else len(data) or 1
        count = max(1, ceil(len(data) / size))
        return [
            [(last if i == count - 1 else more, data[i * size : (i + 1) * size])]
            for i in range(count)
        ]

    def _fragment_pdus(self, data: bytes, more: bytes, last: bytes) -> bytes:
        return b"".join(
            p_data_tf(*(pdv(self.context_id, c, f) for c, f in pdu))
            for pdu in self._fragments(data, more, last)
        )

    def send(self, identifier: bytes) -> None:
        """Queue one Pending C-FIND-RSP carrying ``identifier`` (encoded per the context)."""
        together = len(self._command_pdv) + PDV_HEADER + len(identifier)  # the PDU's PDV items
        fits = self.max_pdu == 0 or together <= self.max_pdu
        if self._through_dul:
            pdus = (
                [[(COMMAND_LAST, self._command), (DATA_LAST, identifier)]]
                if fits
                else self._fragments(self._command, COMMAND_MORE, COMMAND_LAST)
                + self._fragments(identifier, DATA_MORE, DATA_LAST)
            )
            self._primitives += [self._pdata(pdu) for pdu in pdus]
        elif fits:
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

    def _pdata(self, pdu: Pdu) -> P_DATA:
        primitive = P_DATA()
        for control, fragment in pdu:
            primitive.presentation_data_value_list.append((self.context_id, control + fragment))
        return primitive

    def flush(self) -> None:
        """Write the buffered responses. Call before yielding anything to pynetdicom (its
        messages must come after ours) and when the answer is complete. The first response goes
        out at once, then bursts of 2, 4 … 32: the peer sees the first item without waiting for
        a burst, and later writes carry many PDUs per system call."""
        self._in_buffer = 0
        for primitive in self._primitives:
            self.dul.send_pdu(primitive)
        self._primitives.clear()
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            self._write(data)

    def drain(self, timeout: float = IDLE_WAIT) -> None:
        """Write what is buffered. When writing directly the DUL keeps reading incoming PDUs
        meanwhile; through the DUL (TLS), wait until it has sent everything and give it one
        run-loop turn, as it reads incoming PDUs (a C-CANCEL) only while it has nothing to send."""
        self.flush()
        if not self._through_dul:
            return
        deadline = time.monotonic() + timeout
        while self.dul.to_provider_queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.0002)
        time.sleep(DUL_TURN)

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
