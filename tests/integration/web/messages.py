"""HL7 v2 orders for the desk tests: OMI^O23 with a chosen patient name, day, station and
modality (UTF-8, MSH-18 ``UNICODE UTF-8``), and the corpus messages with non-Latin names."""

from __future__ import annotations

import uuid

OMI = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|{msh7}||OMI^O23^OMI_O23|{cid}|P|2.5.1||||||UNICODE UTF-8\r"
    "PID|||{pid}^^^HOSP^MR||{name}||19800101|F\r"
    "PV1||O||||||REF01^SMITH^JOHN|||||||||||VIS{pid}^^^HOSP\r"
    "ORC|{orc1}|{placer}^RIS|||SC||||{msh7}|||ORD01^JONES^AMY\r"
    "TQ1|1||||||{start}||R\r"
    "OBR|1|{placer}^RIS||P2^{desc}^LOCAL\r"
    "IPC|{acc}^HOSP|RP{placer}|2.25.{uid}|SPS{placer}|{modality}"
    "|P2^{desc}^LOCAL|{station}||{station}\r"
)


def omi(
    name: str,
    day: str,
    *,
    station: str = "CT01",
    modality: str = "CT",
    time: str = "0900",
    orc1: str = "NW",
    placer: str | None = None,
    desc: str = "CT head",
    pid: str | None = None,
) -> tuple[bytes, str, str]:
    """(message, accession, control id) of one new order on ``day`` (YYYYMMDD)."""
    placer = placer or f"P{uuid.uuid4().hex[:8].upper()}"
    cid = f"C{uuid.uuid4().hex[:12].upper()}"
    acc = f"A{placer[1:]}"
    text = OMI.format(
        msh7=f"{day}080000", cid=cid, pid=pid or f"PID{placer[1:]}", name=name, orc1=orc1,
        placer=placer, start=f"{day}{time}00", desc=desc, acc=acc, uid=uuid.uuid4().int,
        modality=modality, station=station,
    )  # fmt: skip
    return text.encode("utf-8"), acc, cid


def ack_code(ack: bytes) -> str:
    line = next(x for x in ack.decode("utf-8", "replace").split("\r") if x.startswith("MSA|"))
    return line.split("|")[1]
