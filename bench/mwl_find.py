"""Benchmark the DICOM Modality Worklist C-FIND SCP of ``fhirmwl serve`` against DCMTK
``wlmscpfs`` on the same data, with the same queries and the same clients (issue 5).

For each N the worklist is loaded (FHIR order graphs through the store API up to
``--store-max-n``, index rows computed with the pure mapping above that; see ``mwl_data``),
``fhirmwl serve`` answers from the index, and — up to ``--wlm-max-n`` — the same worklist is
exported with ``fhirmwl mwl export`` and served by ``wlmscpfs -dfp DIR -csk -dhl``. Two queries:
*typical* (one station AE, one day, modality) and *broad* (CT, 7 days, PatientName ``SM*``),
each timed as whole ``findscu -W`` runs and as round trips in one open pynetdicom association
(``TCP_NODELAY`` set, see design.md "Nagle"). Prints figures and writes them as JSON for
``plot_mwl.py``; asserts nothing beyond both servers returning the same number of matches.

    python bench/mwl_find.py --n 0 10000 100000 1000000 --json /tmp/mwl.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import mwl_data
from _common import Server, free_port, pct
from mwl_data import (
    MODALITIES,
    YEAR_START,
    load_derived_rows,
    load_index_rows,
    load_via_store,
    station_aet,
    steps,
)
from mwl_http import measure_http
from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.sop_class import ModalityWorklistInformationFind

Keys = list[tuple[str, str]]  # (top keyword or "SPS.keyword", value) — one spec, two clients
TOP_RETURN = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
              "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
              "ReferringPhysicianName"]  # fmt: skip
SPS_RETURN = ["ScheduledStationAETitle", "Modality", "ScheduledProcedureStepStartDate",
              "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
              "ScheduledProcedureStepDescription", "ScheduledPerformingPhysicianName",
              "ScheduledProcedureStepStatus"]  # fmt: skip


def query_keys(matching: dict[str, str]) -> Keys:
    keys = [(k, matching.get(k, "")) for k in TOP_RETURN]
    return keys + [(f"SPS.{k}", matching.get(f"SPS.{k}", "")) for k in SPS_RETURN]


def typical_queries(n: int, count: int) -> list[Keys]:
    """Station + day + modality of randomly chosen loaded steps (so most queries match)."""
    rnd = random.Random(11)
    picks = sorted(rnd.sample(range(n), count)) if n >= count else []
    chosen = [s for s in steps(max(n, 1)) if s.n in set(picks)] if picks else []
    if not chosen:  # empty worklist: same shape of query
        chosen = [None] * count
    out = []
    for s in chosen:
        station = s.station if s else rnd.randrange(40)
        day = (s.start if s else YEAR_START + timedelta(days=rnd.randrange(365))).strftime("%Y%m%d")
        out.append(query_keys({"SPS.ScheduledStationAETitle": station_aet(station),
                               "SPS.Modality": MODALITIES[station % 8],
                               "SPS.ScheduledProcedureStepStartDate": day}))  # fmt: skip
    return out


def broad_queries(count: int) -> list[Keys]:
    rnd = random.Random(13)
    out = []
    for _ in range(count):
        first = YEAR_START + timedelta(days=rnd.randrange(max(1, mwl_data.DAYS - 7)))
        span = f"{first:%Y%m%d}-{first + timedelta(days=6):%Y%m%d}"
        out.append(query_keys({"PatientName": "SM*", "SPS.Modality": "CT",
                               "SPS.ScheduledProcedureStepStartDate": span}))  # fmt: skip
    return out


def large_queries(n: int, count: int, size: int = 1000) -> list[Keys]:
    """Modality CT over as many days as hold about ``size`` CT steps (a whole-day answer)."""
    rnd = random.Random(17)
    span = max(1, min(mwl_data.DAYS, round(size * 8 * mwl_data.DAYS / max(n, 1))))
    out = []
    for _ in range(count):
        first = YEAR_START + timedelta(days=rnd.randrange(max(1, mwl_data.DAYS - span + 1)))
        last = first + timedelta(days=span - 1)
        out.append(query_keys({"SPS.Modality": "CT",
                               "SPS.ScheduledProcedureStepStartDate":
                                   f"{first:%Y%m%d}-{last:%Y%m%d}"}))  # fmt: skip
    return out


def to_dataset(keys: Keys) -> Dataset:
    ds, sps = Dataset(), Dataset()
    for name, value in keys:
        if name.startswith("SPS."):
            setattr(sps, name[4:], value)
        else:
            setattr(ds, name, value)
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def to_findscu(keys: Keys) -> list[str]:
    args: list[str] = []
    for name, value in keys:
        path = name.replace("SPS.", "ScheduledProcedureStepSequence[0].")
        args += ["-k", f"{path}={value}" if value else path]
    return args


def in_association(port: int, queries: list[Keys]) -> tuple[list[float], list[int]]:
    # A client that does not pretty-print every received identifier into its debug log (as
    # pynetdicom does by default): same client for both servers, and no patient data in logs.
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title="BENCHSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    if not assoc.is_established:
        raise RuntimeError(f"association to port {port} refused")
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times, counts = [], []
    try:
        for keys in queries:
            identifier, found = to_dataset(keys), 0
            started = time.perf_counter()
            for status, _ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
                if status is None or status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise RuntimeError(f"C-FIND failed: {status}")
                found += status.Status != 0x0000
            times.append(time.perf_counter() - started)
            counts.append(found)
    finally:
        assoc.release()
    return times, counts


def findscu_runs(port: int, queries: list[Keys]) -> tuple[list[float], list[int]]:
    times, counts = [], []
    for keys in queries:
        cmd = ["findscu", "-W", "-aet", "BENCHSCU", "-aec", "FHIRMWL", *to_findscu(keys),
               "127.0.0.1", str(port)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        counts.append(done.stderr.count("Find Response:") + done.stdout.count("Find Response:"))
    return times, counts


REPEAT = 4  # extra queries per findscu run for the DCMTK in-association figure
DCMTK_ASSOC_QUERIES = 12


def findscu_in_association(port: int, queries: list[Keys]) -> tuple[list[float], list[int]]:
    """In-association time with DCMTK's C++ client: ``findscu --repeat`` sends the query again
    in the same association, so (t(1 + REPEAT) - t(1)) / REPEAT is one query's round trip
    without process start and association set-up (a client that decodes 1,000 responses far
    faster than pynetdicom does)."""
    times, counts = [], []
    for keys in queries[:DCMTK_ASSOC_QUERIES]:
        base = ["findscu", "-W", "-aet", "BENCHSCU", "-aec", "FHIRMWL", *to_findscu(keys)]
        started = time.perf_counter()
        one = subprocess.run([*base, "127.0.0.1", str(port)], capture_output=True, text=True)
        single = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([*base, "--repeat", str(1 + REPEAT), "127.0.0.1", str(port)],
                       capture_output=True, check=True)  # fmt: skip
        times.append(max(0.0, (time.perf_counter() - started - single) / REPEAT))
        counts.append(one.stderr.count("Find Response:") + one.stdout.count("Find Response:"))
    return times, counts


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its reaped children (wlmscpfs forks one per association):
    a figure the other users of a shared machine do not inflate the way they inflate latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measure(
    label: str, port: int, queries: dict[str, list[Keys]], runs: int, pid: int
) -> dict[str, Any]:
    """``{query: {client: {p50, p95, matches, server_cpu_ms}}}`` in ms (server CPU per query);
    ``runs`` > 1 repeats the whole set."""
    out: dict[str, Any] = {}
    clients = (
        ("assoc", in_association),
        ("findscu", findscu_runs),
        ("dcmtk-assoc", findscu_in_association),
    )
    for qname, qs in queries.items():
        out[qname] = {}
        for client, fn in clients:
            rounds = []
            for _ in range(runs):
                before = cpu_seconds(pid)
                times, counts = fn(port, qs)
                cpu = (cpu_seconds(pid) - before) * 1000 / max(1, len(times))
                if client == "dcmtk-assoc":  # 1 + (1 + REPEAT) queries per sample
                    cpu = cpu / (2 + REPEAT)
                rounds.append((times, counts, cpu))
            for i, (times, counts, cpu) in enumerate(rounds):
                ms = [t * 1000 for t in times]
                entry = {"p50": pct(ms, 50), "p95": pct(ms, 95), "n": len(ms),
                         "matches_mean": sum(counts) / max(1, len(counts)),
                         "server_cpu_ms": cpu}  # fmt: skip
                out[qname].setdefault(client, []).append(entry)
                print(
                    f"  {label:9} {qname:8} {client:11} run {i + 1}: p50 {entry['p50']:8.1f} ms"
                    f"  p95 {entry['p95']:8.1f} ms  ({len(ms)} queries,"
                    f" {entry['matches_mean']:.1f} matches/query, server CPU {cpu:.1f} ms/query)",
                    flush=True,
                )
    return out


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


LOADERS = {"store": load_via_store, "rows": load_index_rows, "derived": load_derived_rows}


def load(db: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from fhirmwl.config import load_settings
    from fhirmwl.wiring import build_services

    services = build_services(load_settings(None, db=db))
    try:
        path = "store" if n <= args.store_max_n else "rows" if n <= args.rows_max_n else "derived"
        seconds = LOADERS[path](services, n) if n else 0
        with services.store.read() as tx:
            rows = tx.conn.execute("SELECT count(*) FROM worklist").fetchone()[0]
    finally:
        services.close()
    print(f"[N={n}] loaded {rows} worklist rows via {path} in {seconds:.1f} s", flush=True)
    return {"path": path, "seconds": seconds, "rows": rows}


def run_wlmscpfs(db: str, tmp: Path, queries: dict[str, list[Keys]], runs: int) -> dict[str, Any]:
    out = tmp / "wl"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fhirmwl.cli", "mwl", "export", "--out", str(out),
                    "--db", db], check=True, capture_output=True)  # fmt: skip
    export_s = time.perf_counter() - started
    print(f"  exported in {export_s:.1f} s", flush=True)
    port = free_port()
    proc = subprocess.Popen(["wlmscpfs", "-dfp", str(out), "-csk", "-dhl", str(port)])
    try:
        wait_port(port)
        return {"export_seconds": export_s, **measure("wlmscpfs", port, queries, runs, proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(out, ignore_errors=True)


def bench_n(n: int, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="fhirmwl-mwl-"))
    db = f"sqlite:///{tmp}/bench.db"
    per_day = args.per_station_day
    mwl_data.DAYS = max(1, round(n / (mwl_data.STATIONS * per_day))) if per_day else 365
    result: dict[str, Any] = {"n": n, "days": mwl_data.DAYS, "load": load(db, n, args)}
    queries = {"typical": typical_queries(n, args.queries), "broad": broad_queries(args.queries)}
    if args.large_queries:
        queries["large"] = large_queries(n, args.large_queries)
    dicom = free_port()
    server = Server(db, "--no-mllp", "--dicom-port", str(dicom))
    try:
        wait_port(dicom)
        result["fhirmwl"] = measure("fhirmwl", dicom, queries, args.runs, server.proc.pid)
        result["http"] = measure_http(server.port, queries, args.runs)  # issue 7: HTTP forms
    finally:
        server.stop()
    if n <= args.wlm_max_n:
        cut = args.wlm_queries if n > 10000 else args.queries
        wlm_queries = {k: v[:cut] for k, v in queries.items()}
        result["wlmscpfs"] = run_wlmscpfs(db, tmp, wlm_queries, args.runs)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[0, 10000, 100000, 1000000])
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument(
        "--per-station-day",
        type=int,
        default=0,
        help="spread the N steps over N/(40*K) days so a station-day holds K steps"
        " (0: one year, as in the first runs)",
    )
    ap.add_argument("--large-queries", type=int, default=0, help="also time ~1,000-item answers")
    ap.add_argument("--runs", type=int, default=1, help="repeat each measurement (noisy host)")
    ap.add_argument(
        "--store-max-n",
        type=int,
        default=10000,
        help="load through the store API up to this N, direct index rows above",
    )
    ap.add_argument(
        "--rows-max-n",
        type=int,
        default=100000,
        help="map one graph per step into index rows up to this N; above it,"
        " map one graph per station and derive the rows (checked on a sample)",
    )
    ap.add_argument("--wlm-max-n", type=int, default=100000, help="largest N for wlmscpfs")
    ap.add_argument("--wlm-queries", type=int, default=10, help="queries for wlmscpfs above 10k")
    ap.add_argument("--json", type=Path, default=Path("/tmp/mwl_find.json"))
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    args = ap.parse_args()
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    for n in args.n:
        results[str(n)] = bench_n(n, args)
        args.json.write_text(json.dumps(results, indent=1))
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
