"""Worklist benchmark data: N scheduled procedure steps spread over a year on 40 stations.

Why a module of its own: the same deterministic step values feed two loading paths that must
produce the same worklist — FHIR order graphs written through the store API (the index follows
in the write transaction, as in production) and, when that is too slow for a million steps,
index rows computed directly with the pure mapping (``build_worklist_item`` + ``worklist_row``)
from one in-memory FHIR graph per step and bulk inserted.

Station ``k`` always has modality ``MODALITIES[k % 8]`` (5 stations per modality); steps are
spread uniformly over ``DAYS`` days from ``YEAR_START`` (365, or set by ``mwl_find.py
--per-station-day``), 07:00–18:45 in 15-minute slots.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fhirmwl.fhir.model import DCM

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ID_TYPES = "http://hl7.org/fhir/uv/imaging-service-request-ig/CodeSystem/imaging-identifier-type"
MODALITIES = ["CT", "MR", "US", "CR", "DX", "MG", "NM", "XA"]
STATIONS = 40
DAYS = 365
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
FAMILIES = [
    "SMITH", "SMALL", "SMART", "SMYTHE", "JONES", "MILLER", "DAVIS", "GARCIA", "MARTIN", "LEE",
    "WALKER", "HALL", "ALLEN", "YOUNG", "KING", "WRIGHT", "LOPEZ", "HILL", "SCOTT", "GREEN",
    "ADAMS", "BAKER", "NELSON", "CARTER", "MITCHELL", "PEREZ", "ROBERTS", "TURNER", "PHILLIPS",
    "CAMPBELL", "PARKER", "EVANS", "EDWARDS", "COLLINS", "STEWART", "MORRIS", "MURPHY", "COOK",
    "ROGERS", "MORGAN",
]  # fmt: skip
GIVENS = ["ANNA", "BEN", "CARLA", "DAVID", "EVA", "FRANK", "GRETA", "HANS", "IDA", "JAN"]


def station_aet(k: int) -> str:
    return f"{MODALITIES[k % 8]}{k:02d}"  # e.g. CT00, MR01 … (modality is k % 8)


@dataclass(frozen=True)
class Step:
    n: int
    station: int
    start: datetime
    family: str
    given: str

    @property
    def modality(self) -> str:
        return MODALITIES[self.station % 8]


def steps(count: int, seed: int = 5) -> Iterator[Step]:
    rnd = random.Random(seed)
    for n in range(count):
        slot = rnd.randrange(48)  # 12 hours of 15-minute slots
        start = YEAR_START + timedelta(days=rnd.randrange(DAYS), hours=7, minutes=15 * slot)
        yield Step(n, rnd.randrange(STATIONS), start, rnd.choice(FAMILIES), rnd.choice(GIVENS))


def _ident(code: str, value: str, system: str) -> dict[str, Any]:
    type_system = V2 if code in ("ACSN", "MR", "VN") else ID_TYPES
    return {"type": {"coding": [{"system": type_system, "code": code}]},
            "system": system, "value": value}  # fmt: skip


def resources(step: Step) -> dict[str, dict[str, Any]]:
    """The FHIR resources of one step's order graph (references left to the caller)."""
    n, start = step.n, step.start.isoformat().replace("+00:00", "Z")
    return {
        "patient": {"resourceType": "Patient", "identifier": [_ident("MR", f"PID{n}", "urn:mrn")],
                    "name": [{"family": step.family, "given": [step.given]}],
                    "birthDate": f"19{50 + step.station}-0{1 + step.station % 9}-15",
                    "gender": ("female", "male")[step.station % 2]},
        "encounter": {"resourceType": "Encounter", "status": "in-progress",
                      "identifier": [_ident("VN", f"V{n}", "urn:visit")]},
        "isr": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "identifier": [_ident("ACSN", f"ACC{n}", "urn:acsn")],
                "authoredOn": "2025-12-01T08:00:00Z"},
        "rp": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "identifier": [_ident("RPID", f"RP{n}", "urn:rp")],
               "code": {"concept": {"text": f"{step.modality} examination"}}},
        "task": {"resourceType": "Task", "status": "requested", "intent": "plan",
                 "identifier": [_ident("SPSID", f"SPS{n}", "urn:sps")],
                 "code": {"text": f"{step.modality} protocol"},
                 "requestedPeriod": {"start": start},
                 "input": [{"type": {"coding": [{"system": DCM, "code": "121139"}]},
                            "valueCodeableConcept": {"coding": [
                                {"system": DCM, "code": step.modality}]}}]},
        "study": {"resourceType": "ImagingStudy", "status": "registered",
                  "identifier": [{"system": "urn:dicom:uid",
                                  "value": f"urn:oid:2.25.{uuid.UUID(int=n + 1).int}"}]},
        "device": {"resourceType": "Device",
                   "name": [{"value": station_aet(step.station), "type": "registered-name"}]},
    }  # fmt: skip


def order_bundle(step: Step) -> dict[str, Any]:
    """One transaction Bundle (as a RIS would send it; the Device by conditional create)."""
    r = resources(step)
    u = {key: f"urn:uuid:{uuid.uuid4()}" for key in r}
    ref = lambda key: {"reference": u[key]}  # noqa: E731
    r["encounter"]["subject"] = ref("patient")
    r["isr"]["subject"] = ref("patient")
    r["rp"] |= {"basedOn": [ref("isr")], "subject": ref("patient"), "encounter": ref("encounter")}
    r["task"] |= {"basedOn": [ref("rp")], "for": ref("patient"),
                  "requestedPerformer": [{"reference": ref("device")}]}  # fmt: skip
    r["study"] |= {"subject": ref("patient"), "basedOn": [ref("rp")]}
    entries = []
    for key, res in r.items():
        request: dict[str, str] = {"method": "POST", "url": res["resourceType"]}
        if key == "device":
            request["ifNoneExist"] = f"name:exact={station_aet(step.station)}"
        entries.append({"fullUrl": u[key], "resource": res, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load_via_store(services: Any, count: int, per_tx: int = 500) -> float:
    """Write ``count`` order graphs through the store API, ``per_tx`` per write transaction;
    the worklist index is maintained by the store's hook. Returns seconds."""
    base = services.settings.fhir_base
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for step in steps(count):
        batch.append(order_bundle(step))
        if len(batch) == per_tx:
            _write_bundles(services, batch, base)
            batch = []
    if batch:
        _write_bundles(services, batch, base)
    return time.perf_counter() - started


def _write_bundles(services: Any, bundles: list[dict[str, Any]], base: str) -> None:
    with services.store.write() as tx:
        for bundle in bundles:
            services.bundles.transaction(tx, bundle, base, None)


def index_row(step: Step, ctx: Any) -> list[Any]:
    """The ``worklist`` row of one step, from its FHIR graph through the pure mapping."""
    from fhirmwl.mapping.fhir_to_dicom import WorklistGraph
    from fhirmwl.mapping.fhir_to_dicom.item import build_worklist_item
    from fhirmwl.worklist.row import ROW_COLUMNS, worklist_row

    r = resources(step)
    graph = WorklistGraph(task=r["task"], requested_procedure=r["rp"], service_request=r["isr"],
                          patient=r["patient"], encounter=r["encounter"], device=r["device"],
                          imaging_study=r["study"])  # fmt: skip
    item = build_worklist_item(graph, ctx)
    assert item is not None, "benchmark graph must map to a worklist item"
    row = worklist_row(item, f"bench-{step.n}", tz=ctx.timezone, sps_start=step.start)
    return [row[c] for c in ROW_COLUMNS]


def _rows_for(chunk: list[Step]) -> list[list[Any]]:
    from fhirmwl.config import load_settings
    from fhirmwl.services.worklist.indexer import mapping_context

    ctx = mapping_context(load_settings(None))
    return [index_row(step, ctx) for step in chunk]


def _chunks(count: int, size: int) -> Iterator[list[Step]]:
    chunk: list[Step] = []
    for step in steps(count):
        chunk.append(step)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_index_rows(services: Any, count: int, workers: int = 2, per_tx: int = 10000) -> float:
    """Insert ``count`` index rows directly (no FHIR resources behind them), mapped in
    ``workers`` processes (the default settings' time zone and status policy). Returns seconds."""
    from multiprocessing import Pool

    from fhirmwl.worklist.row import ROW_COLUMNS

    sql = (f"INSERT INTO worklist ({', '.join(ROW_COLUMNS)})"
           f" VALUES ({', '.join('?' * len(ROW_COLUMNS))})")  # fmt: skip
    started = time.perf_counter()
    with Pool(workers) as pool:
        for rows in pool.imap(_rows_for, _chunks(count, per_tx)):
            _insert(services, sql, rows)
    return time.perf_counter() - started


def template_rows(ctx: Any) -> dict[int, list[Any]]:
    """One mapped row per station, from a graph with placeholder values (see ``derived_row``)."""
    return {k: index_row(Step(TEMPLATE_N + k, k, TEMPLATE_START, "TPLFAMILY", "TPLGIVEN"), ctx)
            for k in range(STATIONS)}  # fmt: skip


TEMPLATE_N = 900000000
TEMPLATE_START = YEAR_START + timedelta(hours=7)


def derived_row(step: Step, templates: dict[int, list[Any]]) -> list[Any]:
    """The row ``index_row(step)`` would give, by substituting the step's values into its
    station's template (identifiers, name, SPS start); equal for every step (checked)."""
    from fhirmwl.worklist.row import ROW_COLUMNS

    row = list(templates[step.station])
    tn, n = str(TEMPLATE_N + step.station), str(step.n)
    day, tm = step.start.strftime("%Y%m%d"), step.start.strftime("%H%M%S")
    name = f"{step.family}^{step.given}"

    def sub(text: str) -> str:
        text = text.replace("TPLFAMILY^TPLGIVEN", name).replace('"20260101"', f'"{day}"')
        text = text.replace('"070000"', f'"{tm}"').replace(
            f"2.25.{int(tn) + 1}", f"2.25.{step.n + 1}"
        )
        return text.replace(tn, n)

    for i in range(len(row)):
        if isinstance(row[i], str):
            row[i] = sub(row[i])
    row[ROW_COLUMNS.index("task_id")] = f"bench-{step.n}"
    row[ROW_COLUMNS.index("sps_start_date")] = day
    row[ROW_COLUMNS.index("sps_start_time")] = tm
    row[ROW_COLUMNS.index("sps_start_utc")] = step.start.isoformat().replace("+00:00", "Z")
    return row


def load_derived_rows(services: Any, count: int, per_tx: int = 20000, check: int = 300) -> float:
    """Like ``load_index_rows`` but maps only one graph per station and derives the others;
    ``check`` random steps are mapped in full and must give identical rows. Returns seconds."""
    from fhirmwl.services.worklist.indexer import mapping_context
    from fhirmwl.worklist.row import ROW_COLUMNS

    ctx = mapping_context(services.settings)
    templates = template_rows(ctx)
    sample = set(random.Random(3).sample(range(count), min(check, count)))
    sql = (f"INSERT INTO worklist ({', '.join(ROW_COLUMNS)})"
           f" VALUES ({', '.join('?' * len(ROW_COLUMNS))})")  # fmt: skip
    started = time.perf_counter()
    batch: list[list[Any]] = []
    for step in steps(count):
        row = derived_row(step, templates)
        if step.n in sample and row != index_row(step, ctx):
            raise AssertionError(f"derived row differs from the mapped one for step {step.n}")
        batch.append(row)
        if len(batch) == per_tx:
            _insert(services, sql, batch)
            batch = []
    if batch:
        _insert(services, sql, batch)
    return time.perf_counter() - started


def _insert(services: Any, sql: str, rows: list[list[Any]]) -> None:
    with services.store.write() as tx:
        tx.conn.executemany(sql, rows)
