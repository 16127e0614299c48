"""``dicom.pdu``: P-DATA-TF bytes equal to what pynetdicom's own encoder makes, and a PDU with
a command and a data set PDV decodes back into both (byte vectors, no network)."""

from __future__ import annotations

import pytest
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from fhirmwl.dicom.pdu import p_data_tf, pdv


def _pynetdicom(pdvs: list[tuple[int, bytes]]) -> bytes:
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[ctx, data] for ctx, data in pdvs]
    pdu = P_DATA_TF()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


@pytest.mark.parametrize(
    "pdvs",
    [
        [(1, b"\x03" + b"\x08\x00" * 20)],  # a last command fragment
        [(3, b"\x03" + b"C" * 64), (3, b"\x02" + b"D" * 301)],  # command + data set, one PDU
        [(255, b"\x00" + bytes(range(256)) * 4)],  # a data set fragment, not the last
    ],
)
def test_same_bytes_as_pynetdicom(pdvs: list[tuple[int, bytes]]) -> None:
    mine = p_data_tf(*(pdv(ctx, data[:1], data[1:]) for ctx, data in pdvs))
    assert mine == _pynetdicom(pdvs)


def test_decodes_into_its_items() -> None:
    encoded = p_data_tf(pdv(5, b"\x03", b"CMD"), pdv(5, b"\x02", b"DATA!"))
    assert encoded[:6] == b"\x04\x00\x00\x00\x00\x14"  # type 4, length of both items (9 + 11)
    pdu = P_DATA_TF()
    pdu.decode(encoded)
    assert pdu.to_primitive().presentation_data_value_list == [(5, b"\x03CMD"), (5, b"\x02DATA!")]
