"""A/B of the 1,000-item C-FIND answer between two source trees, interleaved on one database.

The machine this project is measured on is shared and its load moves by a factor of two within
minutes, so a before/after comparison is only fair when both servers run in turns under the same
load. This loads one worklist (``mwl_find.load``), then for each round starts ``fhirmwl serve``
from tree A, times the *large* queries (CT over as many days as hold about 1,000 steps) with
pynetdicom in one association, DCMTK ``findscu`` in one association and whole ``findscu`` runs,
stops it, and does the same with tree B. Prints p50/p95, matches and server CPU per query.

    python bench/mwl_ab.py --a /path/to/old/src --b src --n 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import mwl_data
import mwl_find
from _common import Server, free_port, pct

CLIENTS = (
    ("pynetdicom", mwl_find.in_association),
    ("dcmtk", mwl_find.findscu_in_association),
    ("findscu", mwl_find.findscu_runs),
)


def one_server(name: str, tree: str, db: str, queries: list[mwl_find.Keys], label: str) -> None:
    dicom = free_port()
    server = Server(db, "--no-mllp", "--dicom-port", str(dicom), env={"PYTHONPATH": tree})
    try:
        mwl_find.wait_port(dicom)
        for client, run in CLIENTS:
            before = mwl_find.cpu_seconds(server.proc.pid)
            times, counts = run(dicom, queries)
            cpu = (mwl_find.cpu_seconds(server.proc.pid) - before) * 1000 / len(times)
            if client == "dcmtk":  # 1 + (1 + REPEAT) queries per sample
                cpu /= 2 + mwl_find.REPEAT
            ms = [t * 1000 for t in times]
            print(
                f"{label} {name:2} {client:10} p50 {pct(ms, 50):7.1f} p95 {pct(ms, 95):7.1f} ms"
                f"  matches {sum(counts) / len(counts):.1f}  server CPU {cpu:.1f} ms/query"
                f"  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--a", required=True, help="source tree (PYTHONPATH) of server A")
    ap.add_argument("--b", required=True, help="source tree (PYTHONPATH) of server B")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--per-station-day", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fhirmwl-ab-"))
    try:
        db = f"sqlite:///{tmp}/bench.db"
        mwl_data.DAYS = max(1, round(args.n / (mwl_data.STATIONS * args.per_station_day)))
        mwl_find.load(db, args.n, argparse.Namespace(store_max_n=0, rows_max_n=100000))
        queries = mwl_find.large_queries(args.n, args.queries)
        trees = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
        for r in range(args.rounds):
            for name, tree in trees.items():
                one_server(name, tree, db, queries, f"round {r + 1}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
