"""Defaults of a Scheduled Procedure Step, and the findings an answer reports about them.

One rule for every door: a step without ``intent`` gets ``plan``; without a protocol, the
Requested Procedure's code; without a DICOM modality (none given, or an HL7 table 0074 value
such as ``RAD`` or ``XRAY``), the modality of the procedure catalogue entry, else
``[orders] default_modality`` (``OT``); without a start, the requested time or the next slot.
Each replaced value is tagged ``urn:fhirmwl:generated`` on the Task and reported as a
``Finding`` (a warning in the answer), never only logged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.outcome import issue
from fhirmwl.services.orders.catalogue import MODALITIES
from fhirmwl.services.orders.context import OrderContext

MODALITY_PATH = "Task.input.where(type.coding.code='121139').valueCodeableConcept"


@dataclass(frozen=True)
class Finding:
    """One thing the answer must tell the sender (a replaced value, a step not scheduled).

    ``about`` names the order element in the vocabulary every door can locate: ``modality``,
    ``start``, ``station``, ``procedure`` or ``worklist``; ``order`` is the fullUrl (request) or
    reference (stored) of the order's Imaging Service Request, so a v2 door finds the ORC group.
    ``hl7_code`` is the table 0357 code the v2 door puts in ERR-3.
    """

    about: str
    text: str
    expression: str
    order: str = ""
    hl7_code: str = "207"
    severity: str = "warning"

    def issue(self) -> dict[str, Any]:
        return issue(self.severity, "business-rule", self.text, self.expression)


def complete_step(
    task: dict[str, Any],
    rp: dict[str, Any],
    ctx: OrderContext,
    findings: list[Finding],
    order: str,
) -> None:
    """Defaults of a Scheduled Procedure Step: intent, protocol, modality, start time."""
    from fhirmwl.services.orders.complete import default_start, tag

    task["intent"] = "plan"
    concept = (rp.get("code") or {}).get("concept")
    if not task.get("code"):
        task["code"] = copy.deepcopy(concept) if concept else {"text": "Scheduled Procedure Step"}
    where = MODALITY_PATH
    given = _modality_codes(task)
    if not given or any(c not in MODALITIES for c in given):
        found = ctx.catalogue.lookup((concept or {}).get("coding") or [])
        modality = found.modality if found else ctx.settings.default_modality
        how = "procedure catalogue" if found else "default modality"
        others = [i for i in task.get("input") or [] if not _is_modality(i)]
        task["input"] = [model.modality_input(modality), *others]
        tag(task, "modality", f"{how} {modality}")
        if given:
            text = (
                f"modality {'/'.join(given)!r} is not a DICOM modality (CID 33); "
                f"{modality} used ({how})"
            )
            findings.append(Finding("modality", text, where, order, "103"))
        else:
            text = f"modality missing; {modality} used ({how})"
            findings.append(Finding("modality", text, where, order, "101"))
    if not (task.get("requestedPeriod") or {}).get("start"):
        start = default_start(rp, ctx.clock(), ctx.settings.slot_minutes)
        value = start.isoformat(timespec="seconds").replace("+00:00", "Z")
        task.setdefault("requestedPeriod", {})["start"] = value
        tag(task, "sps-start", f"next {ctx.settings.slot_minutes}-minute slot")
        text = f"scheduled start missing; {value} used (requested time, else the next slot)"
        findings.append(Finding("start", text, "Task.requestedPeriod.start", order, "101"))


def _is_modality(item: dict[str, Any]) -> bool:
    codings = (item.get("type") or {}).get("coding") or []
    return any(c.get("code") == model.DCM_MODALITY_CODE for c in codings)


def _modality_codes(task: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for item in task.get("input") or []:
        if _is_modality(item):
            concept = item.get("valueCodeableConcept") or {}
            out += [str(c["code"]) for c in concept.get("coding") or [] if c.get("code")]
    return out
