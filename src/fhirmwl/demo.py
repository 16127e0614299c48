"""Demo data: a small, valid worklist for today, so a fresh ``make run`` can be queried at once.

The orders are built in the guide's profiles (docs/resource-model.md) and loaded through the
normal transaction path, so they are validated and indexed exactly like real orders.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.fhir import model

_PATIENTS = [
    ("DOE", "JANE", "female", "1975-03-14"),
    ("SMITH", "JOHN", "male", "1962-11-02"),
    ("MÜLLER", "ANNA", "female", "1988-07-21"),
    ("ROSSI", "MARCO", "male", "1955-01-30"),
    ("YAMADA", "TARO", "male", "1990-05-05"),
    ("NOVAK", "EVA", "female", "2001-09-17"),
]
_STATIONS = [
    ("CT01", "CT", "CT head without contrast", "30799-1"),
    ("MR01", "MR", "MR brain", "24590-2"),
    ("US01", "US", "US abdomen", "24558-9"),
    ("CR01", "DX", "XR chest 2 views", "36643-5"),
]


def _ref(urn: str) -> dict[str, str]:
    return {"reference": urn}


def demo_bundle(n: int, start: datetime | None = None) -> dict[str, Any]:
    """One transaction Bundle holding order ``n`` of the demo worklist."""
    base = (start or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    family, given, gender, birth = _PATIENTS[n % len(_PATIENTS)]
    aet, modality, text, loinc = _STATIONS[n % len(_STATIONS)]
    u = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("pat", "isr", "rp", "task", "dev", "study")}
    mrn = f"DEMO{n % len(_PATIENTS):04d}"
    when = (base + timedelta(minutes=30 * n)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = [
        (
            u["pat"],
            {
                "resourceType": "Patient",
                "meta": {"profile": [model.PROFILE_PATIENT]},
                "identifier": [model.typed_identifier(model.MR, mrn, "urn:fhirmwl:demo:mrn")],
                "name": [{"family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            },
            {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier=urn:fhirmwl:demo:mrn|{mrn}",
            },
        ),
        (
            u["isr"],
            {
                "resourceType": "ServiceRequest",
                "meta": {"profile": [model.PROFILE_ISR]},
                "identifier": [
                    model.typed_identifier(model.ACSN, f"DEMO{n:06d}", "urn:fhirmwl:demo:acsn"),
                    model.typed_identifier(model.PLAC, f"P{n:06d}", "urn:fhirmwl:demo:placer"),
                ],
                "status": "active",
                "intent": "order",
                "subject": _ref(u["pat"]),
                "authoredOn": when,
            },
            {"method": "POST", "url": "ServiceRequest"},
        ),
        (
            u["rp"],
            {
                "resourceType": "ServiceRequest",
                "meta": {"profile": [model.PROFILE_RP]},
                "identifier": [
                    model.typed_identifier(model.RPID, f"RP{n:06d}", "urn:fhirmwl:demo:rp")
                ],
                "status": "active",
                "intent": "order",
                "basedOn": [_ref(u["isr"])],
                "subject": _ref(u["pat"]),
                "priority": "routine",
                "code": {
                    "concept": {
                        "coding": [{"system": "http://loinc.org", "code": loinc, "display": text}],
                        "text": text,
                    }
                },
            },
            {"method": "POST", "url": "ServiceRequest"},
        ),
        (
            u["dev"],
            {
                "resourceType": "Device",
                "meta": {"profile": [model.PROFILE_STATION]},
                "name": [{"value": aet, "type": "registered-name"}],
            },
            {"method": "POST", "url": "Device", "ifNoneExist": f"name:exact={aet}"},
        ),
        (
            u["study"],
            {
                "resourceType": "ImagingStudy",
                "meta": {"profile": [model.PROFILE_STUDY]},
                "identifier": [
                    {"system": model.DICOM_UID_SYSTEM, "value": f"urn:oid:2.25.{uuid.uuid4().int}"}
                ],
                "status": "registered",
                "subject": _ref(u["pat"]),
                "basedOn": [_ref(u["rp"]), _ref(u["isr"])],
            },
            {"method": "POST", "url": "ImagingStudy"},
        ),
        (
            u["task"],
            {
                "resourceType": "Task",
                "meta": {"profile": [model.PROFILE_SPS]},
                "identifier": [
                    model.typed_identifier(model.SPSID, f"SPS{n:06d}", "urn:fhirmwl:demo:sps")
                ],
                "status": "requested",
                "intent": "plan",
                "basedOn": [_ref(u["rp"])],
                "for": _ref(u["pat"]),
                "code": {"text": text},
                "requestedPeriod": {"start": when},
                "requestedPerformer": [{"reference": _ref(u["dev"])}],
                "input": [model.modality_input(modality)],
            },
            {"method": "POST", "url": "Task"},
        ),
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": f, "resource": r, "request": q} for f, r, q in entries],
    }


def demo_start(timezone: str, now: datetime | None = None) -> datetime:
    """08:00 today on the modalities' wall clock (the ``timezone`` setting), so every demo step
    (half-hourly) falls on the date a modality asks for as "today", wherever the server runs."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    return local.replace(hour=8, minute=0, second=0, microsecond=0)


def load_demo(services: Any, count: int = 12, now: datetime | None = None) -> int:
    """Load the demo worklist unless the store already holds Tasks; return orders loaded."""
    with services.store.read() as tx:
        if tx.conn.execute("SELECT 1 FROM resource WHERE res_type = 'Task' LIMIT 1").fetchone():
            return 0
    start = demo_start(services.settings.timezone, now)
    for n in range(count):
        services.bundles.process(demo_bundle(n, start), services.settings.fhir_base, None)
    return count
