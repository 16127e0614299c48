"""Apply ADT patient commands: A01/A04/A08/A31 update, A40 merge, A47 identifier change.

Orders point at a Patient by id, so an identifier change touches only the Patient (the old
identifier stays with ``use`` ``old``, so the order service can attach a late order that still
names it: ``services.orders.survivor``), while a merge
moves every reference to the merged Patient (orders, steps, studies, encounters) to the surviving
one and marks the merged Patient ``active = false`` with ``link`` ``replaced-by`` (the surviving
one gets ``replaces``). Writes go through ``ResourceService`` so the Task guard, the validators
and the worklist index see them like any other change.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.hl7v2.errors import DUPLICATE_KEY_IDENTIFIER, ErrorLocation, V2Error
from fhirmwl.mapping.v2_to_fhir import AdtMessage, PatientCommand, PatientCommandKind
from fhirmwl.mapping.v2_to_fhir.bundle import identifier_query
from fhirmwl.services.ingest_v2.env import IngestEnv
from fhirmwl.store import Tx


def apply_adt(tx: Tx, message: AdtMessage, env: IngestEnv) -> list[str]:
    notes: list[str] = []
    for cmd in message.commands:
        if cmd.kind is PatientCommandKind.UPDATE:
            if cmd.bundle:
                env.bundles.transaction(tx, cmd.bundle, env.base, "minimal")
        elif cmd.kind is PatientCommandKind.MERGE:
            notes += merge_patient(tx, cmd, env)
        else:
            notes += change_identifier(tx, cmd, env)
    return notes


def find_patient(tx: Tx, env: IngestEnv, ident: dict[str, Any] | None) -> str | None:
    if not ident or not ident.get("value"):
        return None
    ids: list[str] = env.resources.find(
        tx, "Patient", identifier_query(ident.get("system"), ident["value"])
    )
    return ids[0] if ids else None


def _rewrite(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (new if k == "reference" and v == old else _rewrite(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, old, new) for v in node]
    return node


def _link(patient: dict[str, Any], other: str, kind: str) -> dict[str, Any]:
    links = [
        lk for lk in patient.get("link") or [] if (lk.get("other") or {}).get("reference") != other
    ]
    return dict(patient, link=[*links, {"other": {"reference": other}, "type": kind}])


def merge_patient(tx: Tx, cmd: PatientCommand, env: IngestEnv) -> list[str]:
    """A40: the MRG-1 patient is merged into the PID-3 patient."""
    query = identifier_query(cmd.identifier.get("system"), cmd.identifier["value"])
    surviving = env.resources.conditional_update(tx, "Patient", query, _without_links(tx, env, cmd))
    surv_id = surviving.stored.res_id
    prior_id = find_patient(tx, env, cmd.prior_identifier)
    if prior_id is None:
        prior = (cmd.prior_identifier or {}).get("value")
        return [f"A40: prior patient {prior} not known; nothing to move"]
    if prior_id == surv_id:
        return ["A40: prior and surviving identifiers name the same patient"]
    old, new = f"Patient/{prior_id}", f"Patient/{surv_id}"
    moved = 0
    for rtype, rid in tx.references_to("Patient", [prior_id], None, None):
        if rtype == "Patient":
            continue
        env.resources.update(tx, rtype, rid, _rewrite(tx.get(rtype, rid), old, new))
        moved += 1
    prior = _link(tx.get("Patient", prior_id), new, "replaced-by")
    env.resources.update(tx, "Patient", prior_id, dict(prior, active=False))
    env.resources.update(tx, "Patient", surv_id, _link(tx.get("Patient", surv_id), old, "replaces"))
    return [f"A40: Patient/{prior_id} merged into Patient/{surv_id}; {moved} resources moved"]


def _without_links(tx: Tx, env: IngestEnv, cmd: PatientCommand) -> dict[str, Any]:
    """The message's Patient, keeping links the stored surviving Patient already has."""
    current = find_patient(tx, env, cmd.identifier)
    patient = dict(cmd.patient)
    if current:
        links = tx.get("Patient", current).get("link")
        if links:
            patient["link"] = links
    return patient


def change_identifier(tx: Tx, cmd: PatientCommand, env: IngestEnv) -> list[str]:
    """A47: the MRG-1 identifier of a patient becomes the PID-3 identifier."""
    prior = cmd.prior_identifier or {}
    patient_id = find_patient(tx, env, prior)
    if patient_id is None:
        return [f"A47: patient with identifier {prior.get('value')} not known; nothing changed"]
    holder = find_patient(tx, env, cmd.identifier)
    if holder not in (None, patient_id):
        raise V2Error(
            DUPLICATE_KEY_IDENTIFIER,
            f"A47: identifier {cmd.identifier.get('value')} already belongs to another patient",
            ErrorLocation("PID", 1, 3),
        )
    patient = tx.get("Patient", patient_id)
    idents = []
    for i in patient.get("identifier") or []:
        if (i.get("system"), i.get("value")) == (prior.get("system"), prior.get("value")):
            idents.append(dict(cmd.identifier))
            i = dict(i, use="old")  # kept, so a late order naming it finds this Patient
        idents.append(i)
    env.resources.update(tx, "Patient", patient_id, dict(patient, identifier=idents))
    return [f"A47: Patient/{patient_id} identifier changed"]
