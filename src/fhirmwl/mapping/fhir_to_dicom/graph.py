"""Assemble :class:`WorklistGraph` objects from a Bundle (transaction or collection).

The store assembles graphs from its tables; this helper does the same from a Bundle whose
entries reference each other by ``fullUrl`` — used by ``mwl import`` previews, ``mwl show`` on
exported bundles and by the round-trip tests (DICOM → FHIR → DICOM).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.mapping.fhir_to_dicom.context import Resource, WorklistGraph


def graphs_from_bundle(bundle: dict[str, Any]) -> list[WorklistGraph]:
    """One graph per Task in the bundle; references resolve by ``fullUrl`` or ``Type/id``."""
    by_ref: dict[str, Resource] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            by_ref[entry["fullUrl"]] = resource
        if resource.get("id"):
            by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource
    tasks = [r for r in by_ref.values() if r.get("resourceType") == "Task"]
    practitioners = {k: r for k, r in by_ref.items() if r.get("resourceType") == "Practitioner"}
    locations = {k: r for k, r in by_ref.items() if r.get("resourceType") == "Location"}
    graphs = []
    for task in _unique(tasks):
        graphs.append(_graph(task, by_ref, practitioners, locations))
    return graphs


def _unique(resources: list[Resource]) -> list[Resource]:
    seen: set[int] = set()
    out = []
    for resource in resources:
        if id(resource) not in seen:
            seen.add(id(resource))
            out.append(resource)
    return out


def _get(by_ref: dict[str, Resource], reference: dict[str, Any] | None) -> Resource | None:
    key = (reference or {}).get("reference")
    return by_ref.get(key) if key else None


def _graph(
    task: Resource,
    by_ref: dict[str, Resource],
    practitioners: dict[str, Resource],
    locations: dict[str, Resource],
) -> WorklistGraph:
    rp = _get(by_ref, next(iter(task.get("basedOn") or []), None))
    isr = _get(by_ref, next(iter((rp or {}).get("basedOn") or []), None))
    patient = _get(by_ref, task.get("for")) or _get(by_ref, (rp or {}).get("subject"))
    encounter = _get(by_ref, task.get("encounter")) or _get(by_ref, (rp or {}).get("encounter"))
    devices = []
    for performer in task.get("requestedPerformer") or []:
        candidate = _get(by_ref, performer.get("reference"))
        if candidate and candidate.get("resourceType") == "Device":
            devices.append(candidate)
    study = None
    rp_keys = {k for k, r in by_ref.items() if r is rp}
    for resource in by_ref.values():
        if resource.get("resourceType") == "ImagingStudy" and any(
            b.get("reference") in rp_keys for b in resource.get("basedOn") or []
        ):
            study = resource
            break
    return WorklistGraph(
        task=task,
        requested_procedure=rp,
        service_request=isr,
        patient=patient,
        encounter=encounter,
        device=devices[0] if devices else None,
        other_devices=tuple(devices[1:]),
        imaging_study=study,
        practitioners=practitioners,
        locations=locations,
    )
