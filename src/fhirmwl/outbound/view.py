"""An order graph as the flat values an outbound HL7 v2 order message carries (pure).

``order_view`` reads the guide's resources (docs/resource-model.md) of one order — Imaging
Service Request, Requested Procedures, Tasks, ImagingStudies, Patient, Encounter, station
Devices, requester — into plain dataclasses with v2-ready strings (TS with offset, HD issuers,
CE triplets). ``outbound.messages`` formats them; neither does IO, so golden tests pin both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhirmwl.fhir import model
from fhirmwl.fhir.references import reference_id
from fhirmwl.mapping.v2_to_fhir.datatypes import CODE_SYSTEMS

_V2_NAMES = {url: name for name, url in reversed(list(CODE_SYSTEMS.items()))}
GENDER = {"female": "F", "male": "M", "other": "O", "unknown": "U"}
PATIENT_CLASS = {"EMER": "E", "IMP": "I", "AMB": "O", "PRENC": "P"}
PRIORITY = {"stat": "S", "asap": "A", "urgent": "A", "routine": "R"}


def v2_coding_system(system: str | None) -> str:
    """FHIR Coding.system → v2 name of coding system (CE.3 / CWE.3)."""
    if not system:
        return ""
    if system in _V2_NAMES:
        return _V2_NAMES[system]
    for prefix in ("urn:fhirmwl:v2-coding-system:", "urn:oid:"):
        if system.startswith(prefix):
            return system[len(prefix) :]
    m = re.fullmatch(r"http://terminology\.hl7\.org/CodeSystem/v2-(\d{4})", system)
    return f"HL7{m.group(1)}" if m else "99LOCAL"


def hd(system: str | None) -> tuple[str, str, str]:
    """Identifier.system → HD (namespace id, universal id, universal id type)."""
    if not system:
        return "", "", ""
    if system.startswith("urn:fhirmwl:issuer:"):
        return system[len("urn:fhirmwl:issuer:") :], "", ""
    if system.startswith("urn:oid:"):
        return "", system[8:], "ISO"
    if system.startswith("urn:fhirmwl:"):
        return "", "", ""
    return "", system, "URI"


def ts(value: str | None) -> str:
    """FHIR date/dateTime → v2 TS/DTM (with the offset when the value has one)."""
    if not value:
        return ""
    if len(value) <= 10:
        return value.replace("-", "")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    out = moment.strftime("%Y%m%d%H%M%S")
    return out + moment.strftime("%z") if moment.tzinfo else out


@dataclass
class Code:
    code: str = ""
    text: str = ""
    system: str = ""  # v2 coding system name

    @classmethod
    def of(cls, concept: dict[str, Any] | None) -> Code:
        concept = concept or {}
        coding = (concept.get("coding") or [{}])[0]
        return cls(
            str(coding.get("code") or ""),
            str(coding.get("display") or concept.get("text") or ""),
            v2_coding_system(coding.get("system")) if coding.get("code") else "",
        )


@dataclass
class Step:
    sps_id: str
    status: str
    modality: str
    protocol: Code
    start: str  # v2 TS
    station_aet: str
    station_name: str
    location: str


@dataclass
class Procedure:
    rp_id: str
    status: str
    code: Code
    study_uid: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class OrderView:
    patient_id: str
    patient_issuer: tuple[str, str, str]
    family: str
    given: str
    middle: str
    birth_date: str
    sex: str
    visit_number: str
    patient_class: str
    placer: str
    filler: str
    placer_issuer: tuple[str, str, str]
    filler_issuer: tuple[str, str, str]
    accession: str
    accession_issuer: tuple[str, str, str]
    status: str
    priority: str
    authored: str
    requester: tuple[str, str, str]  # id, family, given
    reason: Code
    procedures: list[Procedure] = field(default_factory=list)


def _ident(resource: dict[str, Any], code: tuple[str, str]) -> dict[str, Any]:
    return model.identifier_of_type(resource, code) or {}


def _device_names(device: dict[str, Any] | None) -> tuple[str, str]:
    ae = name = ""
    for n in (device or {}).get("name") or []:
        kind = n.get("type")
        kind = (kind.get("coding") or [{}])[0].get("code") if isinstance(kind, dict) else kind
        if kind == "registered-name" and not ae:
            ae = str(n.get("value") or "")
        elif kind == "user-friendly-name" and not name:
            name = str(n.get("value") or "")
    return ae, name


def _step(task: dict[str, Any], others: dict[str, dict[str, Any]]) -> Step:
    modality = ""
    for inp in task.get("input") or []:
        for c in (inp.get("valueCodeableConcept") or {}).get("coding") or []:
            modality = modality or str(c.get("code") or "")
    device: dict[str, Any] | None = None
    for perf in task.get("requestedPerformer") or []:
        dev_id = reference_id(perf.get("reference"), "Device")
        device = device or others.get(f"Device/{dev_id}")
    ae, name = _device_names(device)
    location = (task.get("location") or {}).get("display") or ""
    return Step(
        str(_ident(task, model.SPSID).get("value") or ""),
        str(task.get("status") or ""),
        modality,
        Code.of(task.get("code")),
        ts((task.get("requestedPeriod") or {}).get("start")),
        ae,
        name,
        str(location),
    )


def _study_uid(rp_id: str, studies: list[dict[str, Any]]) -> str:
    for study in studies:
        if any(reference_id(b, "ServiceRequest") == rp_id for b in study.get("basedOn") or []):
            for ident in study.get("identifier") or []:
                if ident.get("system") == model.DICOM_UID_SYSTEM:
                    return str(ident.get("value") or "").removeprefix("urn:oid:")
    return ""


def _patient(patient: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ident = _ident(patient, model.MR) or ((patient.get("identifier") or [{}])[0])
    name = (patient.get("name") or [{}])[0]
    return ident, name


def order_view(
    isr: dict[str, Any],
    rps: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    studies: list[dict[str, Any]],
    others: dict[str, dict[str, Any]],
) -> OrderView:
    """``others``: the graph's other resources keyed ``Type/id`` (Patient, Encounter, …)."""
    patient = others.get(f"Patient/{reference_id(isr.get('subject'), 'Patient')}") or {}
    ident, name = _patient(patient)
    given = [str(g) for g in name.get("given") or []]
    encounter = next((r for k, r in others.items() if k.startswith("Encounter/")), {})
    klass = ((encounter.get("class") or [{}])[0].get("coding") or [{}])[0].get("code")
    requester_id = reference_id(isr.get("requester"), "Practitioner")
    practitioner = others.get(f"Practitioner/{requester_id}") or {}
    pname = (practitioner.get("name") or [{}])[0]
    accession = _ident(isr, model.ACSN)
    placer, filler = _ident(isr, model.PLAC), _ident(isr, model.FILL)
    view = OrderView(
        patient_id=str(ident.get("value") or ""),
        patient_issuer=hd(ident.get("system")),
        family=str(name.get("family") or ""),
        given=given[0] if given else "",
        middle=" ".join(given[1:]),
        birth_date=str(patient.get("birthDate") or "").replace("-", ""),
        sex=GENDER.get(str(patient.get("gender") or ""), ""),
        visit_number=str(_ident(encounter, model.VN).get("value") or ""),
        patient_class=PATIENT_CLASS.get(str(klass or ""), "U"),
        placer=str(placer.get("value") or ""),
        filler=str(filler.get("value") or ""),
        placer_issuer=hd(placer.get("system")),
        filler_issuer=hd(filler.get("system")),
        accession=str(accession.get("value") or ""),
        accession_issuer=hd(accession.get("system")),
        status=str(isr.get("status") or ""),
        priority=PRIORITY.get(str(isr.get("priority") or "routine"), "R"),
        authored=ts(isr.get("authoredOn")),
        requester=(
            str((practitioner.get("identifier") or [{}])[0].get("value") or ""),
            str(pname.get("family") or (isr.get("requester") or {}).get("display") or ""),
            str((pname.get("given") or [""])[0]),
        ),
        reason=Code.of(((isr.get("reason") or [{}])[0]).get("concept")),
    )
    for rp in rps:
        rp_id = str(rp.get("id"))
        steps = [
            _step(t, others)
            for t in tasks
            if any(reference_id(b, "ServiceRequest") == rp_id for b in t.get("basedOn") or [])
        ]
        view.procedures.append(
            Procedure(
                str(_ident(rp, model.RPID).get("value") or ""),
                str(rp.get("status") or ""),
                Code.of((rp.get("code") or {}).get("concept")),
                _study_uid(rp_id, studies),
                steps,
            )
        )
    return view
