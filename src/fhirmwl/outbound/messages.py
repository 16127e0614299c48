"""Outbound HL7 v2 order messages as text (pure): OMI^O23 (2.5.1) and ORM^O01 (2.3.1).

IHE Scheduled Workflow from the Department System Scheduler's side: RAD-4 Procedure Scheduled
(ORC-1 NW) and RAD-13 Procedure Updated (XO, CA, DC) to the Image Manager, RAD-3 order status
(SC with ORC-5) to the Order Placer. The field map mirrors the intake (docs/hl7v2.md) so a
message the broker sends maps back to the same order: OMI carries one ORC/TQ1/OBR group per
Requested Procedure and one IPC per Scheduled Procedure Step; ORM one ORC/OBR/ZDS group per step
(OBR-18/19/20, OBR-24, OBR-4.4–4.6). Values are escaped (``\\F\\`` …); delimiters are the
defaults; the text is UTF-8 (MSH-18 ``UNICODE UTF-8``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirmwl.hl7v2.ack import _escape
from fhirmwl.hl7v2.message import Delimiters
from fhirmwl.outbound.view import Code, OrderView, Procedure, Step

D = Delimiters()
SCHEDULED, UPDATED, CANCELLED, STATUS = (
    "procedure-scheduled",
    "procedure-updated",
    "procedure-cancelled",
    "order-status",
)
EVENTS = (SCHEDULED, UPDATED, CANCELLED, STATUS)
STARTED = frozenset({"in-progress", "completed", "failed"})


@dataclass(frozen=True)
class Header:
    """MSH values of one destination."""

    message_type: str = "OMI^O23"  # or ORM^O01
    version: str = "2.5.1"
    sending_application: str = "FHIRMWL"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""


def esc(value: str) -> str:
    return _escape(value, D)


def comp(*values: str) -> str:
    """Components (already escaped values are not passed here: each value is escaped)."""
    return D.component.join(esc(v) for v in values).rstrip(D.component)


def segment(name: str, fields: dict[int, str]) -> str:
    """``name|f1|f2…`` with the given (pre-formatted) fields at their positions."""
    last = max(fields) if fields else 0
    return D.field.join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def _hd_sub(issuer: tuple[str, str, str]) -> str:
    return D.subcomponent.join(esc(v) for v in issuer).rstrip(D.subcomponent)


def _code(code: Code) -> str:
    return comp(code.code, code.text, code.system)


def orc_status(proc: Procedure) -> str:
    """ORC-5 of one Requested Procedure (table 0038)."""
    statuses = [s.status for s in proc.steps]
    if proc.status == "completed" or (statuses and all(s == "completed" for s in statuses)):
        return "CM"
    if proc.status == "revoked" or (statuses and all(s == "cancelled" for s in statuses)):
        return "CA"
    if any(s == "in-progress" for s in statuses):
        return "IP"
    if statuses and all(s == "on-hold" for s in statuses):
        return "HD"
    return "SC"


def order_control(view: OrderView, event: str, proc: Procedure) -> tuple[str, str]:
    """(ORC-1, ORC-5) for one Requested Procedure group of an event."""
    if event == SCHEDULED:
        return "NW", "SC"
    if event == CANCELLED:
        started = any(s.status in STARTED for p in view.procedures for s in p.steps)
        return ("DC" if started else "CA"), "CA"
    if event == UPDATED:
        return "XO", orc_status(proc)
    return "SC", orc_status(proc)


def _msh(h: Header, control_id: str, now: str) -> str:
    structure = "OMI_O23" if h.message_type.startswith("OMI") else "ORM_O01"
    return segment(
        "MSH",
        {
            1: D.msh2,
            2: esc(h.sending_application),
            3: esc(h.sending_facility),
            4: esc(h.receiving_application),
            5: esc(h.receiving_facility),
            6: now,
            8: f"{h.message_type}^{structure}",
            9: esc(control_id),
            10: "P",
            11: esc(h.version),
            17: "UNICODE UTF-8",
        },
    )


def _patient(view: OrderView) -> list[str]:
    pid = segment(
        "PID",
        {
            1: "1",
            3: D.component.join(
                [esc(view.patient_id), "", "", _hd_sub(view.patient_issuer)]
            ).rstrip(D.component),
            5: comp(view.family, view.given, view.middle),
            7: view.birth_date,
            8: view.sex,
        },
    )
    pv1 = segment("PV1", {1: "1", 2: view.patient_class, 19: esc(view.visit_number)})
    return [pid, pv1]


def _orc(view: OrderView, orc1: str, orc5: str, timing: str) -> str:
    return segment(
        "ORC",
        {
            1: orc1,
            **_numbers(view),
            5: orc5,
            7: timing,
            9: view.authored,
            12: comp(*view.requester),
        },
    )


def ei(value: str, issuer: tuple[str, str, str]) -> str:
    """EI: entity id ^ namespace id ^ universal id ^ universal id type."""
    return D.component.join([esc(value), *(esc(v) for v in issuer)]).rstrip(D.component)


def _numbers(view: OrderView) -> dict[int, str]:
    """ORC-2/OBR-2 placer and ORC-3/OBR-3 filler order numbers (EI)."""
    return {2: ei(view.placer, view.placer_issuer), 3: ei(view.filler, view.filler_issuer)}


def _accession(view: OrderView) -> str:
    return ei(view.accession, view.accession_issuer)


def _ipc(view: OrderView, proc: Procedure, step: Step) -> str:
    return segment(
        "IPC",
        {
            1: _accession(view),
            2: esc(proc.rp_id),
            3: esc(proc.study_uid),
            4: esc(step.sps_id),
            5: comp(step.modality, step.modality, "DCM") if step.modality else "",
            6: _code(step.protocol),
            7: esc(step.station_name),
            8: esc(step.location),
            9: esc(step.station_aet),
        },
    )


def _omi_groups(view: OrderView, event: str) -> list[str]:
    out = []
    for n, proc in enumerate(view.procedures, 1):
        orc1, orc5 = order_control(view, event, proc)
        start = min((s.start for s in proc.steps if s.start), default="")
        out.append(_orc(view, orc1, orc5, ""))
        out.append(segment("TQ1", {1: "1", 7: start, 9: view.priority}))
        obr = {1: str(n), **_numbers(view), 4: _code(proc.code)}
        obr.update({16: comp(*view.requester), 31: _code(view.reason), 44: _code(proc.code)})
        out.append(segment("OBR", obr))
        out += [_ipc(view, proc, step) for step in proc.steps]
    return out


def _orm_groups(view: OrderView, event: str, h: Header) -> list[str]:
    out = []
    n = 0
    for proc in view.procedures:
        orc1, orc5 = order_control(view, event, proc)
        for step in proc.steps or [Step("", "", "", Code(), "", "", "", "")]:
            n += 1
            timing = comp("", "", "", step.start, "", view.priority)
            out.append(_orc(view, orc1, orc5, timing))
            code4 = [proc.code.code, proc.code.text, proc.code.system]
            code4 += [step.protocol.code, step.protocol.text, step.protocol.system]
            obr = {1: str(n), **_numbers(view), 4: comp(*code4)}
            obr.update({16: comp(*view.requester), 18: esc(view.accession)})
            obr.update({19: esc(proc.rp_id), 20: esc(step.sps_id), 24: esc(step.modality)})
            obr.update({27: timing, 31: _code(view.reason), 44: _code(proc.code)})
            out.append(segment("OBR", obr))
            if proc.study_uid:
                uid = comp(proc.study_uid, h.sending_application, "Application", "DICOM")
                out.append(segment("ZDS", {1: uid}))
    return out


def build_message(view: OrderView, event: str, header: Header, control_id: str, now: str) -> str:
    """The whole message, segments separated by CR (MLLP framing is the sender's job)."""
    segments = [_msh(header, control_id, now), *_patient(view)]
    if header.message_type.startswith("OMI"):
        segments += _omi_groups(view, event)
    else:
        segments += _orm_groups(view, event, header)
    return "\r".join(segments) + "\r"
