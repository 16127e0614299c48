"""ACK building: MSH echoes the inbound message, MSA-2 = MSH-10, ERR carries code and location."""

from __future__ import annotations

from datetime import UTC, datetime

from fhirmwl.hl7v2 import AckError, ErrorLocation, build_ack, encode_ack, parse_message

INBOUND = (
    b"MSH|^~\\&|RIS|HOSP|MWL|RAD|20250101120000||ORM^O01|CTRL42|P|2.3.1||||||8859/1\r"
    b"PID|||P1^^^HOSP||DOE^JANE\r"
)


def _now() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_aa_ack_swaps_applications_and_echoes_control_id() -> None:
    msg = parse_message(INBOUND)
    ack = build_ack(msg, "AA", control_id="A1", now=_now).split("\r")
    msh = ack[0].split("|")
    assert msh[2:6] == ["MWL", "RAD", "RIS", "HOSP"]
    assert msh[6] == "20250102030405" and msh[8] == "ACK^O01^ACK" and msh[9] == "A1"
    assert msh[11] == "2.3.1" and msh[17] == "8859/1"
    assert ack[1] == "MSA|AA|CTRL42"
    assert ack[2] == ""  # trailing CR, no ERR


def test_err_segment_has_location_code_and_escaped_text() -> None:
    msg = parse_message(INBOUND)
    err = AckError("101", "OBR-18 missing | really", ErrorLocation("OBR", 2, 18))
    lines = build_ack(msg, "AE", errors=[err], text="bad", control_id="A2", now=_now).split("\r")
    assert lines[1] == "MSA|AE|CTRL42|bad"
    fields = lines[2].split("|")
    assert fields[0] == "ERR"
    assert fields[1] == "OBR^2^18^101&Required field missing&HL70357"
    assert fields[2] == "OBR^2^18"
    assert fields[3] == "101^Required field missing^HL70357"
    assert fields[4] == "E"
    assert fields[8] == "OBR-18 missing \\F\\ really"


def test_ack_without_parsed_message() -> None:
    ack = build_ack(None, "AR", errors=[AckError("102", "garbage")], control_id="X", now=_now)
    assert ack.startswith("MSH|^~\\&|FHIRMWL|") and "\rMSA|AR|" in ack
    assert encode_ack(None, ack).decode("ascii") == ack
