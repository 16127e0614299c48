"""The HTTP forms of the worklist query, timed with the same queries as the C-FIND benchmark
(issue 7): ``$mwl-query`` answering DICOM JSON, ``$mwl-query`` answering a FHIR Bundle with the
step context, the DICOMweb MWL search and the plain FHIR Task search (``station-aet``,
``modality``, ``requested-period`` + ``_include``). One keep-alive connection per form; called by
``mwl_find.py`` for each N, so the figures sit beside the C-FIND ones.
"""

from __future__ import annotations

import http.client
import socket
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from _common import pct
from pydicom.datadict import tag_for_keyword

Keys = list[tuple[str, str]]
SPS = "ScheduledProcedureStepSequence"
INCLUDES = [("_include", "Task:based-on"), ("_include:iterate", "ServiceRequest:based-on"),
            ("_include", "Task:patient"), ("_include", "Task:encounter"),
            ("_include", "Task:requested-performer-reference"),
            ("_revinclude:iterate", "ImagingStudy:based-on")]  # fmt: skip


def _bare(keys: Keys) -> Keys:
    return [(k[4:] if k.startswith("SPS.") else k, v) for k, v in keys]


def _tag_path(name: str) -> str:
    parts = [SPS, name[4:]] if name.startswith("SPS.") else [name]
    return ".".join(f"{tag_for_keyword(p):08X}" for p in parts)


def _iso(da: str, days: int = 0) -> str:
    return (datetime.strptime(da, "%Y%m%d") + timedelta(days=days)).strftime("%Y-%m-%d")


def task_search(keys: Keys) -> Keys | None:
    """The FHIR search equivalent of the benchmark's queries (``None`` if not expressible)."""
    values = dict(keys)
    out: Keys = []
    if values.get("SPS.ScheduledStationAETitle"):
        out.append(("station-aet", values["SPS.ScheduledStationAETitle"]))
    if values.get("SPS.Modality"):
        out.append(("modality", values["SPS.Modality"]))
    date = values.get("SPS.ScheduledProcedureStepStartDate", "")
    if date:
        low, _, high = date.partition("-") if "-" in date else (date, "", date)
        out += [("requested-period", f"ge{_iso(low)}T00:00:00Z"),
                ("requested-period", f"lt{_iso(high or low, 1)}T00:00:00Z")]  # fmt: skip
    name = values.get("PatientName", "")
    if name:
        if not name.endswith("*") or "?" in name or "*" in name[:-1]:
            return None
        out.append(("patient.family", name[:-1]))
    return [*out, *INCLUDES, ("_count", "1000")]


FORMS = {
    "mwl-json": lambda k: (f"/fhir/Task/$mwl-query?{urlencode(_bare(k))}&_count=1000",
                           "application/dicom+json"),
    "mwl-bundle": lambda k: (f"/fhir/Task/$mwl-query?{urlencode(_bare(k))}&_count=1000",
                             "application/fhir+json"),
    "dicomweb": lambda k: ("/dicomweb/modality-scheduled-procedure-steps?" + urlencode(
        [(_tag_path(n), v) for n, v in k if v] + [("includefield", "all")]),
        "application/dicom+json"),
    "task-search": lambda k: (f"/fhir/Task?{urlencode(q)}" if (q := task_search(k)) else None,
                              "application/fhir+json"),
}  # fmt: skip


def _connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def run_form(port: int, form: str, queries: list[Keys]) -> list[float] | None:
    conn = _connect(port)
    times: list[float] = []
    try:
        for keys in queries:
            path, accept = FORMS[form](keys)
            if path is None:
                return None
            started = time.perf_counter()
            conn.request("GET", path, headers={"Accept": accept})
            response = conn.getresponse()
            response.read()
            times.append(time.perf_counter() - started)
            if response.status not in (200, 204, 206):
                raise RuntimeError(f"{form}: HTTP {response.status} for {path}")
    finally:
        conn.close()
    return times


def measure_http(port: int, queries: dict[str, list[Keys]], runs: int) -> dict[str, Any]:
    """``{query: {form: [{p50, p95, n}]}}`` in ms."""
    out: dict[str, Any] = {}
    for qname, qs in queries.items():
        out[qname] = {}
        for form in FORMS:
            for i in range(runs):
                times = run_form(port, form, qs)
                if times is None:
                    continue
                ms = [t * 1000 for t in times]
                entry = {"p50": pct(ms, 50), "p95": pct(ms, 95), "n": len(ms)}
                out[qname].setdefault(form, []).append(entry)
                print(f"  http      {qname:8} {form:11} run {i + 1}: p50 {entry['p50']:8.1f} ms"
                      f"  p95 {entry['p95']:8.1f} ms  ({len(ms)} queries)", flush=True)  # fmt: skip
    return out
