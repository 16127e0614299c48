"""Send Pending C-FIND responses whose identifier is already encoded.

Why not yield datasets to pynetdicom: its C-FIND service class encodes every identifier with
pydicom and re-encodes the same command set for every Pending response (measured: about 1 ms of
CPU per response on this project's 2-core host, more than the rest of the answer). All Pending
responses of one request share one command set (same Message ID Being Responded To, SOP class,
status), so it is encoded once here with pynetdicom's own message class, and each response is
handed to the association's DUL queue as P-DATA primitives — the fragmentation of PS3.8
Annex D.1 that ``DIMSEServiceProvider.send_msg`` produces, except that a command set and an
identifier that fit one PDU together share one P-DATA-TF. The
final status is still sent by pynetdicom when the handler returns. ``EVT_DIMSE_SENT`` is not
triggered for these responses.
"""

from __future__ import annotations

import time
from io import BytesIO
from math import ceil
from typing import Any

from pydicom.uid import UID
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

COMMAND_MORE, COMMAND_LAST = b"\x01", b"\x03"
DATA_MORE, DATA_LAST = b"\x00", b"\x02"
MAX_BURST = 32  # responses handed to the DUL at once (see flush)
DUL_TURN = 0.002  # pynetdicom's DUL sleeps 1 ms when idle; let it read the socket once


class PendingSender:
    """One per C-FIND request (``event`` is pynetdicom's ``EVT_C_FIND`` event)."""

    def __init__(self, event: Any, status: int) -> None:
        self.dul = event.assoc.dul
        self.context_id = int(event.context.context_id)
        syntax = UID(event.context.transfer_syntax)
        self.implicit = bool(syntax.is_implicit_VR)
        # Big Endian and deflated identifiers stay with pynetdicom's encoder.
        self.usable = bool(syntax.is_little_endian) and not syntax.is_deflated
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
        self.max_pdu = int(event.assoc.dimse.maximum_pdu_size)
        self.command = self._fragments(command)
        self._buffer: list[P_DATA] = []
        self._in_buffer = 0  # responses in the buffer
        self._burst = 1

    def _fragments(self, data: bytes) -> list[bytes]:
        if self.max_pdu == 0:
            return [data]
        size = self.max_pdu - 6  # PDV item header: length (4) + context id (1) + control (1)
        return [data[i * size : (i + 1) * size] for i in range(ceil(len(data) / size))]

    def _pdata(self, control: bytes, fragment: bytes) -> P_DATA:
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((self.context_id, control + fragment))
        return pdata

    def send(self, identifier: bytes) -> None:
        """Queue one Pending C-FIND-RSP carrying ``identifier`` (encoded per the context).
        When command and identifier fit the peer's maximum PDU together, both PDVs travel in
        one P-DATA-TF (PS3.8 9.3.5 allows several PDVs per PDU): half the DUL work."""
        if len(self.command) == 1 and (
            self.max_pdu == 0 or len(self.command[0]) + len(identifier) + 12 <= self.max_pdu
        ):
            pdata = P_DATA()
            pdata.presentation_data_value_list.append(
                (self.context_id, COMMAND_LAST + self.command[0])
            )
            pdata.presentation_data_value_list.append((self.context_id, DATA_LAST + identifier))
            self._buffer.append(pdata)
        else:
            self._queue(self.command, COMMAND_MORE, COMMAND_LAST)
            self._queue(self._fragments(identifier), DATA_MORE, DATA_LAST)
        self._in_buffer += 1
        if self._in_buffer >= self._burst:
            self.flush()
            self._burst = min(self._burst * 2, MAX_BURST)

    def flush(self) -> None:
        """Hand the buffered responses to the DUL. Call before yielding anything to pynetdicom
        (its messages must come after ours) and when the answer is complete.

        Why bursts: pynetdicom's DUL sleeps 1 ms (often more on a busy host) whenever its queue
        is empty; handing it one response at a time made it sleep between almost every
        response. The first response goes out at once, then bursts of 2, 4 … 32."""
        for pdata in self._buffer:
            self.dul.send_pdu(pdata)
        self._buffer.clear()
        self._in_buffer = 0

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until the DUL has sent everything queued, then give it one run-loop turn.
        pynetdicom's DUL reads incoming PDUs (a C-CANCEL) only while it has nothing to send,
        so a caller that checks for cancellation calls this between batches of responses."""
        self.flush()
        deadline = time.monotonic() + timeout
        while self.dul.to_provider_queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.0002)
        time.sleep(DUL_TURN)

    def _queue(self, fragments: list[bytes], more: bytes, last: bytes) -> None:
        for index, fragment in enumerate(fragments):
            control = last if index == len(fragments) - 1 else more
            self._buffer.append(self._pdata(control, fragment))
