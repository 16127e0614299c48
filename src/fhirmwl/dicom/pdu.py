"""P-DATA-TF bytes (PS3.8 9.3.5): the only PDU the C-FIND SCP writes itself.

Pure codec, no IO. ``pending.PendingSender`` writes Pending C-FIND responses straight to the
association's socket as these bytes, many PDUs per ``send`` call, instead of handing one
``P_DATA`` primitive per response to pynetdicom's DUL (which converts each into PDU objects,
runs its state machine and makes one ``send`` system call per PDU: most of the server's time
in a 1,000-item answer). Tested byte for byte against pynetdicom's own encoder.
"""

from __future__ import annotations

import struct

P_DATA_TF = 0x04
PDV_HEADER = 6  # item length (4) + presentation context id (1) + message control header (1)
PDU_HEADER = 6  # type (1) + reserved (1) + length (4)
_LENGTH = struct.Struct(">I")


def pdv(context_id: int, control: bytes, fragment: bytes) -> bytes:
    """One Presentation Data Value item: ``control`` is the message control header byte
    (command/data set, last fragment or not), ``fragment`` the message bytes it carries."""
    return _LENGTH.pack(len(fragment) + 2) + bytes((context_id,)) + control + fragment


def p_data_tf(*items: bytes) -> bytes:
    """A P-DATA-TF PDU holding the given PDV items (from :func:`pdv`)."""
    body = b"".join(items)
    return bytes((P_DATA_TF, 0)) + _LENGTH.pack(len(body)) + body
