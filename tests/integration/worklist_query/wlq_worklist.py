"""A generated worklist for the transport-consistency test: 60 steps on 4 stations over 3 days,
20 patients with ASCII, Latin-1 and Japanese names, some steps without a visit (empty Admission
ID). Loaded through FHIR transaction Bundles, exactly as an order placer would."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
IG_IDS = "http://hl7.org/fhir/uv/imaging-service-request-ig/CodeSystem/imaging-identifier-type"
MRN = "http://example.org/mrn"
STATIONS = (("CT01", "CT"), ("CT02", "CT"), ("MR01", "MR"), ("US01", "US"))
DAYS = ("20240301", "20240302", "20240303")
NAMES = (
    ("SMITH", "JOHN"),
    ("SMITH", "JANE"),
    ("SMYTHE", "ANNA"),
    ("JONES", "MARY"),
    ("MÜLLER", "JÜRGEN"),
    ("MÜLLER", "ANNA"),
    ("GARCÍA", "JOSÉ"),
    ("DUBOIS", "FRANÇOISE"),
    ("山田", "太郎"),
    ("山本", "花子"),
    ("OBRIEN", "SEAN"),
    ("NGUYEN", "AN"),
    ("BROWN", "ALICE"),
    ("BRAUN", "OTTO"),
    ("LEE", "KIM"),
    ("LI", "WEI"),
    ("KOWALSKI", "PIOTR"),
    ("ÅSTRÖM", "BJÖRN"),
    ("DOE", "JOHN"),
    ("SMITS", "KAREL"),
)


@dataclass(frozen=True)
class Step:
    sps_id: str
    station: str
    modality: str
    date: str
    time: str
    family: str
    given: str
    patient_id: str
    birth_date: str
    accession: str
    rp_id: str
    study_uid: str
    admission_id: str  # "" when the order has no visit

    @property
    def name(self) -> str:
        return f"{self.family}^{self.given}"


def steps() -> list[Step]:
    out = []
    for i in range(60):
        station, modality = STATIONS[i % 4]
        p = i % len(NAMES)
        family, given = NAMES[p]
        minutes = 8 * 60 + (i // 4) * 37 % (10 * 60)
        out.append(
            Step(
                sps_id=f"SPS{i:03d}",
                station=station,
                modality=modality,
                date=DAYS[i % 3],
                time=f"{minutes // 60:02d}{minutes % 60:02d}00",
                family=family,
                given=given,
                patient_id=f"PID{p:03d}",
                birth_date=f"19{50 + p:02d}0{1 + p % 9}15",
                accession=f"ACC{i:04d}",
                rp_id=f"RP{i:04d}",
                study_uid=f"2.25.{990000 + i}",
                admission_id="" if i % 5 == 0 else f"V{i:04d}",
            )
        )
    return out


def _ident(system: str, value: str, code: str | None = None, cs: str = V2) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": system, "value": value}
    if code:
        ident["type"] = {"coding": [{"system": cs, "code": code}]}
    return ident


def _entry(url: str, resource: dict[str, Any], if_none: str | None = None) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none:
        request["ifNoneExist"] = if_none
    return {"fullUrl": url, "resource": resource, "request": request}


def _patient(s: Step) -> dict[str, Any]:
    born = f"{s.birth_date[:4]}-{s.birth_date[4:6]}-{s.birth_date[6:]}"
    return {
        "resourceType": "Patient",
        "identifier": [_ident(MRN, s.patient_id, "MR")],
        "name": [{"family": s.family, "given": [s.given]}],
        "gender": "other",
        "birthDate": born,
    }


def _task(s: Step, n: int) -> dict[str, Any]:
    start = datetime.strptime(s.date + s.time, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    end = start + timedelta(minutes=20)
    return {
        "resourceType": "Task",
        "identifier": [_ident("http://example.org/sps", s.sps_id, "SPSID", IG_IDS)],
        "status": "requested",
        "intent": "plan",
        "basedOn": [{"reference": f"urn:uuid:rp-{n}"}],
        "code": {"coding": [{"system": "http://example.org/protocols", "code": "P1"}]},
        "for": {"reference": f"urn:uuid:pat-{s.patient_id}"},
        "requestedPeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "requestedPerformer": [{"reference": {"reference": f"urn:uuid:dev-{s.station}"}}],
        "input": [
            {
                "type": {"coding": [{"system": DCM, "code": "121139"}]},
                "valueCodeableConcept": {"coding": [{"system": DCM, "code": s.modality}]},
            }
        ],
    } | ({"encounter": {"reference": f"urn:uuid:enc-{n}"}} if s.admission_id else {})


def _order(s: Step, n: int) -> list[dict[str, Any]]:
    pat = {"reference": f"urn:uuid:pat-{s.patient_id}"}
    isr = {
        "resourceType": "ServiceRequest",
        "identifier": [_ident("http://example.org/acsn", s.accession, "ACSN")],
        "status": "active",
        "intent": "order",
        "subject": pat,
    }
    rp = {
        "resourceType": "ServiceRequest",
        "identifier": [_ident("http://example.org/rp", s.rp_id, "RPID", IG_IDS)],
        "status": "active",
        "intent": "order",
        "basedOn": [{"reference": f"urn:uuid:isr-{n}"}],
        "code": {"concept": {"coding": [{"system": "http://loinc.org", "code": "24627-2"}]}},
        "subject": pat,
    }
    study = {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{s.study_uid}"}],
        "status": "registered",
        "subject": pat,
        "basedOn": [{"reference": f"urn:uuid:rp-{n}"}],
    }
    entries = [
        _entry(f"urn:uuid:isr-{n}", isr),
        _entry(f"urn:uuid:rp-{n}", rp),
        _entry(f"urn:uuid:study-{n}", study),
        _entry(f"urn:uuid:task-{n}", _task(s, n)),
    ]
    if s.admission_id:
        encounter = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "identifier": [_ident("http://example.org/visit", s.admission_id, "VN")],
            "subject": pat,
        }
        entries.append(_entry(f"urn:uuid:enc-{n}", encounter))
    return entries


def transactions(all_steps: list[Step]) -> list[dict[str, Any]]:
    """One transaction per day; stations and patients are conditional creates."""
    bundles = []
    for day in DAYS:
        entries: dict[str, dict[str, Any]] = {}
        for n, s in enumerate(all_steps):
            if s.date != day:
                continue
            entries[f"urn:uuid:pat-{s.patient_id}"] = _entry(
                f"urn:uuid:pat-{s.patient_id}", _patient(s), f"identifier={MRN}|{s.patient_id}"
            )
            device = {
                "resourceType": "Device",
                "name": [{"value": s.station, "type": "registered-name"}],
            }
            entries[f"urn:uuid:dev-{s.station}"] = _entry(
                f"urn:uuid:dev-{s.station}", device, f"name={s.station}"
            )
            for e in _order(s, n):
                entries[e["fullUrl"]] = e
        bundles.append(
            {"resourceType": "Bundle", "type": "transaction", "entry": list(entries.values())}
        )
    return bundles


def c_find(port: int, identifier: Dataset) -> list[Dataset]:
    """Every Pending identifier of one C-FIND (asserts a final Success)."""
    ae = AE(ae_title="CONSIST")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    assert assoc.is_established
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    results: list[Dataset] = []
    try:
        for status, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
            assert status is not None, "no response from the SCP"
            if status.Status in (0xFF00, 0xFF01):
                results.append(ds)
            else:
                assert status.Status == 0x0000, hex(status.Status)
    finally:
        assoc.release()
    return results
