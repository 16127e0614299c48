"""Resources the HL7 v2 door builds skip the generic pydantic pass on write
(``check_structure(built=True)``); this proves that what they store passes the full R5
structure check and the guide's profiles, for every corpus message, every golden input and the
benchmark's messages, on both backends. The lighter check still refuses a bad value from the
sender exactly where the full check does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhirmwl.config import load_settings
from fhirmwl.errors import Unprocessable
from fhirmwl.fhir.structure import check_structure, structure_issues
from fhirmwl.services.ingest_v2 import ingest
from fhirmwl.services.profiles import store_resolver
from fhirmwl.validation import validate
from fhirmwl.wiring import build_services
from tests.integration.mllp_service.messages import orm

GOLDEN = Path(__file__).resolve().parents[2] / "unit" / "mapping_v2" / "golden"


def _messages(corpus: Path) -> list[bytes]:
    files = sorted((corpus / "hl7").glob("*.hl7")) + sorted(GOLDEN.glob("*.hl7"))
    out = [p.read_bytes() for p in files]
    for n in range(4):  # the benchmark's shapes (bench/mllp_ingest.py), new orders and changes
        out.append(orm("NW", f"BV{n}", f"CB{n}", pid=f"BVP{n}"))
        out.append(orm("NW", f"BW{n}", f"CW{n}", pid=f"BVP{n}", omi=True))
        out.append(orm("XO", f"BV{n}", f"CX{n}", msh7="20250101130000", pid=f"BVP{n}"))
    return out


def _stored(services: Any) -> list[dict[str, Any]]:
    with services.store.read() as tx:
        rows = tx.conn.execute(
            "SELECT res_type, res_id FROM resource WHERE deleted = 0 ORDER BY res_type, res_id"
        ).fetchall()
        out = []
        for res_type, res_id in rows:
            stored = tx.read(res_type, res_id)
            assert stored is not None
            out.append(stored.resource())
        return out


def test_v2_output_passes_the_full_structure_and_profile_check(db_url: str, corpus: Path) -> None:
    services = build_services(load_settings(None, db=db_url))
    try:
        acks = [ingest(services, raw) for raw in _messages(corpus)]
        assert sum(b"MSA|AA|" in a for a in acks) >= 30  # most of them were applied
        resources = _stored(services)
        kinds = {r["resourceType"] for r in resources}
        assert {"Patient", "ServiceRequest", "Task", "ImagingStudy", "Encounter"} <= kinds
        with services.store.read() as tx:
            resolve = store_resolver(tx)
            for res in resources:
                where = f"{res['resourceType']}/{res.get('id')}"
                assert structure_issues(res["resourceType"], res) == [], where
                check_structure(res["resourceType"], res, built=True)
                if (res.get("meta") or {}).get("profile"):
                    errors = [
                        i.to_fhir()
                        for i in validate(res, None, resolve, base=False)
                        if i.to_fhir()["severity"] in ("error", "fatal")
                    ]
                    assert errors == [], (where, errors)
    finally:
        services.close()


CODING = {"system": "http://loinc.org", "code": "24627-2"}


@pytest.mark.parametrize(
    ("resource", "where"),
    [
        ({"code": {"concept": {"coding": [dict(CODING, code="CT  ABD")]}}}, "code.concept"),
        ({"code": {"concept": {"coding": [dict(CODING, code=" CT")]}}}, "code.concept"),
        ({"authoredOn": "2025-13-01"}, "authoredOn"),
        ({"authoredOn": "2025-02-30"}, "authoredOn"),
        ({"authoredOn": "2025-01-01T10:00:00"}, "authoredOn"),
        ({"identifier": [{"value": 12}]}, "identifier[0].value"),
        ({"identifier": [{"value": ""}]}, "identifier[0].value"),
        ({"identifier": [{"valu": "x"}]}, "identifier[0].valu"),
        ({"subject": "Patient/1"}, "subject"),
        ({"status": "on"}, "status"),
        ({"quantityQuantity": {"value": "1"}}, "quantityQuantity.value"),
        ({"id": "a" * 65}, "id"),
    ],
)
def test_built_check_refuses_what_the_full_check_refuses(
    resource: dict[str, Any], where: str
) -> None:
    base = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
    }
    res = {**base, **resource}
    full = structure_issues("ServiceRequest", res)
    assert full, res
    with pytest.raises(Unprocessable) as built:
        check_structure("ServiceRequest", res, built=True)
    expr = built.value.issues[0]["expression"][0]
    assert expr.startswith(f"ServiceRequest.{where}"), (expr, full)
    assert any(i["expression"][0].startswith(f"ServiceRequest.{where}") for i in full), full


def test_built_check_accepts_what_the_full_check_accepts() -> None:
    res = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "authoredOn": "2025-01-01T10:00:00+01:00",
        "code": {"concept": {"coding": [dict(CODING, code="CT ABD")]}},
        "identifier": [{"system": "urn:oid:1.2.3", "value": " any text "}],
        "quantityQuantity": {"value": 1.5},
    }
    assert structure_issues("ServiceRequest", res) == []
    check_structure("ServiceRequest", res, built=True)
