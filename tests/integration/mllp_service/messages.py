"""Synthetic ORM^O01 / OMI^O23 / ADT messages for the v2 intake tests (one order per call)."""

from __future__ import annotations

ORM = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|{msh7}||ORM^O01|{cid}|P|2.3.1\r"
    "PID|||{pid}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "PV1||O|RAD^^^HOSP|||||REF01^SMITH^JOHN|||||||||||VIS{pid}^^^HOSP\r"
    "ORC|{orc1}|{placer}^RIS|||{orc5}||^^^20250102090000^^R||20250101115500|||ORD01^JONES^AMY\r"
    "OBR|1|{placer}^RIS||CTABD^{desc}^LOCAL^P1^CT abdomen^LOCAL||||||||||||ORD01^JONES^AMY"
    "||{acc}|RP{placer}|SPS{placer}||||CT\r"
    "ZDS|1.2.826.0.1.3680043.10.999.{n}^BROKER^Application^DICOM\r"
)
OMI = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|{msh7}||OMI^O23^OMI_O23|{cid}|P|2.5.1\r"
    "PID|||{pid}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "PV1||O||||||REF01^SMITH^JOHN|||||||||||VIS{pid}^^^HOSP\r"
    "ORC|{orc1}|{placer}^RIS|||{orc5}||||20250101115500|||ORD01^JONES^AMY\r"
    "TQ1|1||||||20250102090000||R\r"
    "OBR|1|{placer}^RIS||MRHEAD^{desc}^LOCAL\r"
    "IPC|{acc}^HOSP|RP{placer}|1.2.826.0.1.3680043.10.998.{n}|SPS{placer}|MR"
    "|P2^MR head^LOCAL|MR1||MR1_AE\r"
)
ADT_A40 = (
    "MSH|^~\\&|ADT|HOSP|MWL|HOSP|{msh7}||ADT^A40^ADT_A39|{cid}|P|2.5.1\r"
    "EVN|A40|{msh7}\r"
    "PID|||{pid}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "MRG|{prior}^^^HOSP^MR\r"
)


def orm(
    orc1: str,
    placer: str,
    cid: str,
    msh7: str = "20250101120000",
    orc5: str = "",
    pid: str = "PAT1",
    desc: str = "CT Abdomen",
    acc: str | None = None,
    omi: bool = False,
) -> bytes:
    n = sum(ord(c) for c in placer)
    template = OMI if omi else ORM
    return template.format(
        orc1=orc1, placer=placer, cid=cid, msh7=msh7, orc5=orc5, pid=pid, desc=desc,
        acc=acc or f"ACC{placer}", n=n,
    ).encode()  # fmt: skip


def a40(pid: str, prior: str, cid: str, msh7: str = "20250101130000") -> bytes:
    return ADT_A40.format(pid=pid, prior=prior, cid=cid, msh7=msh7).encode()


def msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, ERR-3 code or '') of an ACK."""
    lines = ack.decode("latin-1").split("\r")
    code = next(line for line in lines if line.startswith("MSA|")).split("|")[1]
    err = next((line for line in lines if line.startswith("ERR|")), "")
    parts = err.split("|")
    return code, (parts[3].split("^")[0] if len(parts) > 3 else "")
