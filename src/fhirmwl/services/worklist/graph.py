"""Assemble the resource graph of one Scheduled Procedure Step from the store.

Which resources belong to a step is decided by the pure ``assemble_graph`` (mapping); this
module only tells it how to resolve a reference and find the ImagingStudy inside the caller's
transaction. It also finds which
Tasks a write affects, by walking reverse references (a changed Patient affects its Tasks, a
changed ImagingServiceRequest the Tasks of its RequestedProcedures, …).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.references import split_reference
from fhirmwl.mapping.fhir_to_dicom import WorklistGraph
from fhirmwl.mapping.fhir_to_dicom.graph import assemble_graph, based_only_on
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
# Resources that point at the patient, not the other way: their change affects the Tasks of
# the patient they name (a new allergy updates the patient's items in the same transaction).
_PATIENT_CONTENT = {"AllergyIntolerance": "patient", "Flag": "patient", "Observation": "patient"}
_MAX_DEPTH = 4


def _read(tx: Tx, reference: str | None) -> Resource | None:
    key = split_reference(reference)
    if key is None:
        return None
    stored = tx.read(*key)
    return stored.resource() if stored and not stored.deleted else None


def load_graph(tx: Tx, task: Resource) -> WorklistGraph:
    """The graph of one Task, read from the store inside the caller's transaction."""

    def study_for(rp: Resource | None, isr: Resource | None) -> Resource | None:
        if rp is not None:
            found = tx.references_to("ServiceRequest", [rp["id"]], "ImagingStudy", "based-on")
            studies = tx.read_many(found[:1])
            if studies:
                return studies[0].resource()
        if isr is not None:  # the guide's example: the study is based on the ISR alone (I-14)
            found = tx.references_to("ServiceRequest", [isr["id"]], "ImagingStudy", "based-on")
            isr_ref = {f"ServiceRequest/{isr['id']}"}
            for stored in tx.read_many(found):
                if based_only_on(study := stored.resource(), isr_ref):
                    return study
        return None

    def clinical_for(patient: Resource) -> list[Resource]:
        if not patient.get("id"):
            return []
        # One lookup per clinical type: the patient's other references (every order, step and
        # study it ever had) stay in the index instead of coming back to be filtered here.
        keys = [
            key
            for rtype, param in _PATIENT_CONTENT.items()
            for key in tx.references_to("Patient", [patient["id"]], rtype, param)
        ]
        return [s.resource() for s in tx.read_many(keys)] if keys else []

    return assemble_graph(task, lambda ref: _read(tx, ref), study_for, clinical_for)


def affected_tasks(tx: Tx, touched: list[tuple[str, str]]) -> list[str]:
    """Ids of the Tasks whose worklist item may change because ``touched`` changed."""
    tasks = {rid for rtype, rid in touched if rtype == "Task"}
    frontier: set[tuple[str, str]] = set()
    for rtype, rid in touched:
        if rtype == "ImagingStudy":  # the study points at its procedure, not the other way
            frontier.update(tx.references_from("ImagingStudy", [rid], "based-on", None))
        elif rtype in _PATIENT_CONTENT:
            frontier.update(tx.references_from(rtype, [rid], _PATIENT_CONTENT[rtype], "Patient"))
        elif rtype in _GRAPH_TYPES and rtype != "Task" and (rtype, rid) not in tx.created:
            # A resource created in this unit of work is referenced only by resources written
            # in it too (they are in ``touched``), so only changed ones need the reverse walk.
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
