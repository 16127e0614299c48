"""Assemble the resource graph of one Scheduled Procedure Step from the store.

The pure mapping (``mapping.fhir_to_dicom``) needs Task → RequestedProcedure → ImagingServiceRequest
→ Patient, Encounter, Device(s), ImagingStudy and the Practitioners/Locations they name; this
module reads exactly those, by reference, inside the caller's transaction. It also finds which
Tasks a write affects, by walking reverse references (a changed Patient affects its Tasks, a
changed ImagingServiceRequest the Tasks of its RequestedProcedures, …).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.mapping.fhir_to_dicom import WorklistGraph
from fhirmwl.store import Tx

Resource = dict[str, Any]
_GRAPH_TYPES = frozenset(
    {
        "ServiceRequest",
        "Patient",
        "Encounter",
        "Device",
        "ImagingStudy",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Task",
    }
)
_MAX_DEPTH = 4


def _split(reference: str | None) -> tuple[str, str] | None:
    if not reference or reference.startswith(("urn:", "#")):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def _read(tx: Tx, reference: str | None) -> Resource | None:
    key = _split(reference)
    if key is None:
        return None
    stored = tx.read(*key)
    return stored.resource() if stored and not stored.deleted else None


def _ref(obj: Any) -> str | None:
    return obj.get("reference") if isinstance(obj, dict) else None


def _first_ref(items: Any, rtype: str) -> str | None:
    for item in items or []:
        ref = _ref(item)
        if ref and (_split(ref) or ("", ""))[0] == rtype:
            return ref
    return None


def load_graph(tx: Tx, task: Resource) -> WorklistGraph:
    rp_ref = _first_ref(task.get("basedOn"), "ServiceRequest")
    rp = _read(tx, rp_ref)
    isr = _read(tx, _first_ref((rp or {}).get("basedOn"), "ServiceRequest")) if rp else None
    patient = _read(tx, _ref(task.get("for"))) or _read(tx, _ref((rp or {}).get("subject")))
    encounter = next(
        (
            e
            for e in (_read(tx, _ref(r.get("encounter"))) for r in (task, rp or {}, isr or {}))
            if e
        ),
        None,
    )
    devices = [
        d
        for d in (
            _read(tx, _ref(p.get("reference")))
            for p in task.get("requestedPerformer") or []
            if (_split(_ref(p.get("reference"))) or ("",))[0] == "Device"
        )
        if d
    ]
    study = None
    for source in (rp, isr):
        if source and study is None:
            found = tx.references_to("ServiceRequest", [source["id"]], "ImagingStudy", "based-on")
            studies = tx.read_many(found[:1])
            study = studies[0].resource() if studies else None
    return WorklistGraph(
        task=task,
        requested_procedure=rp,
        service_request=isr,
        patient=patient,
        encounter=encounter,
        device=devices[0] if devices else None,
        other_devices=tuple(devices[1:]),
        imaging_study=study,
        practitioners=_people(tx, task, rp, isr, encounter),
        locations=_places(tx, task, encounter),
    )


def _people(
    tx: Tx, task: Resource, rp: Resource | None, isr: Resource | None, encounter: Resource | None
) -> dict[str, Resource]:
    refs = [_ref(task.get("owner"))]
    refs += [_ref(p.get("reference")) for p in task.get("requestedPerformer") or []]
    for sr in (rp, isr):
        if sr:
            refs.append(_ref(sr.get("requester")))
            refs += [_ref(p) for p in sr.get("performer") or []]
    for participant in (encounter or {}).get("participant") or []:
        refs.append(_ref(participant.get("actor")))
    out: dict[str, Resource] = {}
    for ref in refs:
        key = _split(ref)
        if ref and key and key[0] in ("Practitioner", "PractitionerRole") and ref not in out:
            found = _read(tx, ref)
            if found:
                out[ref] = found
    return out


def _places(tx: Tx, task: Resource, encounter: Resource | None) -> dict[str, Resource]:
    refs = [_ref(task.get("location"))]
    refs += [_ref(loc.get("location")) for loc in (encounter or {}).get("location") or []]
    out: dict[str, Resource] = {}
    for ref in refs:
        if ref and ref not in out and (found := _read(tx, ref)):
            out[ref] = found
    return out


def affected_tasks(tx: Tx, touched: list[tuple[str, str]]) -> list[str]:
    """Ids of the Tasks whose worklist item may change because ``touched`` changed."""
    tasks = {rid for rtype, rid in touched if rtype == "Task"}
    frontier: set[tuple[str, str]] = set()
    for rtype, rid in touched:
        if rtype == "ImagingStudy":  # the study points at its procedure, not the other way
            frontier.update(tx.references_from("ImagingStudy", [rid], "based-on", None))
        elif rtype in _GRAPH_TYPES and rtype != "Task":
            frontier.add((rtype, rid))
    seen = set(frontier)
    for _ in range(_MAX_DEPTH):
        by_type: dict[str, list[str]] = {}
        for rtype, rid in frontier:
            by_type.setdefault(rtype, []).append(rid)
        nxt: set[tuple[str, str]] = set()
        for rtype, ids in by_type.items():
            for src_type, src_id in tx.references_to(rtype, ids, None, None):
                if src_type == "Task":
                    tasks.add(src_id)
                elif src_type in _GRAPH_TYPES and src_type != "ImagingStudy":
                    nxt.add((src_type, src_id))
        frontier = nxt - seen
        seen |= frontier
        if not frontier:
            break
    return sorted(tasks)
