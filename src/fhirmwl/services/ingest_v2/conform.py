"""Bring a mapped v2 Bundle in line with the guide's profiles before the store validates it.

The pure mapping (``mapping.v2_to_fhir``) leaves gaps that strict profile validation refuses,
although the message is a usable order: ``Task.intent`` must be ``plan`` for a Scheduled
Procedure Step; ``Task.code`` (Scheduled Protocol) is 1..* while many messages carry no protocol;
Modality (``Task.input``) and the SPS start (``Task.requestedPeriod``) are 1..* while v2.2/2.3
senders often omit OBR-24 and ORC-7. The intake fills them here, under the same rule as every
other value the broker invents (a ``urn:fhirmwl:generated`` tag on the Task): ``code`` from the
Requested Procedure's code, modality from ``[v2] default_modality`` (``OT``), start at the next
slot boundary (``[orders] slot_minutes``). These are candidates to move into the mapping itself.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from fhirmwl.fhir.model import generated_tag, modality_input

_NO_PROTOCOL = {"text": "Scheduled Procedure Step"}


def next_slot(now: datetime, slot_minutes: int) -> str:
    """``now`` rounded up to the next ``slot_minutes`` boundary, as a FHIR dateTime (UTC)."""
    slot = max(1, slot_minutes) * 60
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch + (-epoch % slot) or epoch, tz=now.tzinfo)
    return start.astimezone(now.tzinfo).strftime("%Y-%m-%dT%H:%M:%S%z")[:-2] + ":00"


def _tag(task: dict[str, Any], code: str, how: str) -> None:
    tags = task.setdefault("meta", {}).setdefault("tag", [])
    tag = generated_tag(code, f"generated: value missing from the message ({how})")
    if tag not in tags:
        tags.append(tag)


def conform(
    bundle: dict[str, Any], now: datetime, slot_minutes: int = 5, modality: str = "OT"
) -> dict[str, Any]:
    """``bundle`` (changed in place, and returned) with every Task completed as above."""
    out = bundle
    by_url = {e.get("fullUrl"): e.get("resource") or {} for e in out.get("entry") or []}
    for entry in out.get("entry") or []:
        task = entry.get("resource") or {}
        if task.get("resourceType") != "Task":
            continue
        task["intent"] = "plan"
        if not task.get("code"):
            task["code"] = _procedure_code(task, by_url)
        if not task.get("input"):
            task["input"] = [modality_input(modality)]
            _tag(task, "modality", f"default modality {modality}")
        if not (task.get("requestedPeriod") or {}).get("start"):
            period = task.setdefault("requestedPeriod", {})
            period["start"] = next_slot(now, slot_minutes)
            _tag(task, "sps-start", f"next {slot_minutes}-minute slot")
    return out


def _procedure_code(task: dict[str, Any], by_url: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    for based_on in task.get("basedOn") or []:
        rp = by_url.get(based_on.get("reference")) or {}
        concept = (rp.get("code") or {}).get("concept")
        if concept:
            return copy.deepcopy(concept)
    return dict(_NO_PROTOCOL)
