"""Assemble :class:`WorklistGraph` objects: which resources one worklist item is built from.

``assemble_graph`` is the one rule (spec/ig.md §1): Task → RequestedProcedure (first
``basedOn``) → ImagingServiceRequest; Patient from ``Task.for`` (else the RP subject);
Encounter from Task, else RP, else ISR (I-19); Devices from ``Task.requestedPerformer``; the
ImagingStudy based on the RP (else one based on the ISR alone, I-14); and the
Practitioners/Locations those resources name. It is pure: callers pass how references resolve —
the store resolves them with reads inside a transaction (services/worklist/graph.py),
``graphs_from_bundle`` by ``fullUrl`` within a Bundle (``mwl import`` previews, round-trip tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirmwl.mapping.fhir_to_dicom.context import Resource, WorklistGraph

Resolve = Callable[[str | None], Resource | None]
StudyFor = Callable[[Resource | None, Resource | None], Resource | None]
ClinicalFor = Callable[[Resource], list[Resource]]
_PEOPLE = ("Practitioner", "PractitionerRole")
CLINICAL_TYPES = ("AllergyIntolerance", "Flag", "Observation")


def _ref(obj: Any) -> str | None:
    return obj.get("reference") if isinstance(obj, dict) else None


def _of_type(resource: Resource | None, *types: str) -> Resource | None:
    return resource if resource is not None and resource.get("resourceType") in types else None


def based_only_on(study: Resource, refs: set[str]) -> bool:
    """True when every ``basedOn`` of ``study`` is one of ``refs``: a study the guide's way,
    based on the ImagingServiceRequest alone (I-14), belongs to the order's Requested Procedure
    only when it names no other request (a study of a sibling RP also names the ISR)."""
    based = [_ref(b) for b in study.get("basedOn") or []]
    return bool(based) and all(b in refs for b in based)


def assemble_graph(
    task: Resource,
    resolve: Resolve,
    study_for: StudyFor,
    clinical_for: ClinicalFor = lambda patient: [],
) -> WorklistGraph:
    rp = _of_type(resolve(_ref(next(iter(task.get("basedOn") or []), None))), "ServiceRequest")
    isr = None
    if rp is not None:
        isr = _of_type(resolve(_ref(next(iter(rp.get("basedOn") or []), None))), "ServiceRequest")
    patient = _of_type(
        resolve(_ref(task.get("for"))) or resolve(_ref((rp or {}).get("subject"))), "Patient"
    )
    encounter = next(
        (
            e
            for e in (
                _of_type(resolve(_ref(r.get("encounter"))), "Encounter")
                for r in (task, rp or {}, isr or {})
            )
            if e
        ),
        None,
    )
    devices = [
        d
        for d in (
            _of_type(resolve(_ref(p.get("reference"))), "Device")
            for p in task.get("requestedPerformer") or []
        )
        if d
    ]
    return WorklistGraph(
        task=task,
        requested_procedure=rp,
        service_request=isr,
        patient=patient,
        encounter=encounter,
        device=devices[0] if devices else None,
        other_devices=tuple(devices[1:]),
        imaging_study=study_for(rp, isr),
        practitioners=_resolved(resolve, _people_refs(task, rp, isr, encounter), _PEOPLE),
        locations=_resolved(resolve, _place_refs(task, encounter), ("Location",)),
        clinical=tuple(clinical_for(patient)) if patient is not None else (),
    )


def _people_refs(
    task: Resource, rp: Resource | None, isr: Resource | None, encounter: Resource | None
) -> list[str | None]:
    refs = [_ref(task.get("owner"))]
    refs += [_ref(p.get("reference")) for p in task.get("requestedPerformer") or []]
    for sr in (rp, isr):
        if sr:
            refs.append(_ref(sr.get("requester")))
            refs += [_ref(p) for p in sr.get("performer") or []]
    refs += [_ref(p.get("actor")) for p in (encounter or {}).get("participant") or []]
    return refs


def _place_refs(task: Resource, encounter: Resource | None) -> list[str | None]:
    refs = [_ref(task.get("location"))]
    return refs + [_ref(loc.get("location")) for loc in (encounter or {}).get("location") or []]


def _resolved(
    resolve: Resolve, refs: list[str | None], types: tuple[str, ...]
) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for ref in refs:
        if ref and ref not in out and (found := _of_type(resolve(ref), *types)):
            out[ref] = found
    return out


def graphs_from_bundle(bundle: dict[str, Any]) -> list[WorklistGraph]:
    """One graph per Task in the bundle; references resolve by ``fullUrl`` or ``Type/id``."""
    by_ref: dict[str, Resource] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            by_ref[entry["fullUrl"]] = resource
        if resource.get("id"):
            by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource
    studies = [r for r in _unique(list(by_ref.values())) if r.get("resourceType") == "ImagingStudy"]

    def resolve(ref: str | None) -> Resource | None:
        return by_ref.get(ref) if ref else None

    def study_for(rp: Resource | None, isr: Resource | None) -> Resource | None:
        rp_keys = {k for k, r in by_ref.items() if r is rp} if rp is not None else set()
        isr_keys = {k for k, r in by_ref.items() if r is isr} if isr is not None else set()
        for study in studies:
            if any(_ref(b) in rp_keys for b in study.get("basedOn") or []):
                return study
        return next((s for s in studies if isr_keys and based_only_on(s, isr_keys)), None)

    def clinical_for(patient: Resource) -> list[Resource]:
        keys = {k for k, r in by_ref.items() if r is patient}
        return [
            r
            for r in _unique(list(by_ref.values()))
            if r.get("resourceType") in CLINICAL_TYPES
            and _ref(r.get("patient") or r.get("subject")) in keys
        ]

    tasks = [r for r in by_ref.values() if r.get("resourceType") == "Task"]
    return [assemble_graph(task, resolve, study_for, clinical_for) for task in _unique(tasks)]


def _unique(resources: list[Resource]) -> list[Resource]:
    seen: set[int] = set()
    out = []
    for resource in resources:
        if id(resource) not in seen:
            seen.add(id(resource))
            out.append(resource)
    return out
