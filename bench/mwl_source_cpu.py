"""In-process CPU of the worklist source (the C-FIND SCP's read path) on one SQLite worklist.

Loads N index rows directly (``mwl_data.load_derived_rows``), stored the way the tree under
test stores them (deflated when it has ``fhirmwl.worklist.itemcodec``, text before), then times
``StoreWorklistSource.find_json_with_ids`` — the indexed SQL pre-filter, reading the stored items
and the Python matcher — for a *typical* query (one station, one day) and a *large* one (CT over
a month), as CPU time (``process_time``; the machine is shared, so the minimum of many runs is
the figure to compare). For an A/B, run it with each tree's ``src`` on ``PYTHONPATH``:

    PYTHONPATH=/path/to/old/src python bench/mwl_source_cpu.py --n 100000
    PYTHONPATH=src python bench/mwl_source_cpu.py --n 100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mwl_data import load_derived_rows  # noqa: E402

from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.services.worklist.source import StoreWorklistSource  # noqa: E402
from fhirmwl.wiring import build_services  # noqa: E402
from fhirmwl.worklist.query import WorklistQuery  # noqa: E402

SPS = "ScheduledProcedureStepSequence"
QUERIES = {
    "typical": {
        f"{SPS}.ScheduledStationAETitle": "CR03",
        f"{SPS}.ScheduledProcedureStepStartDate": "20260512",
        "PatientName": "",
        "PatientID": "",
    },
    "large": {
        f"{SPS}.Modality": "CT",
        f"{SPS}.ScheduledProcedureStepStartDate": "20260101-20260131",
        "PatientName": "",
        "PatientID": "",
        "AccessionNumber": "",
    },
}


def _pack_rows(services: object) -> str:
    """Store the items as this tree's indexer writes them; returns the format."""
    try:
        from fhirmwl.worklist.itemcodec import pack_item
    except ImportError:
        return "text"
    with services.store.write() as tx:  # type: ignore[attr-defined]
        rows = tx.conn.execute("SELECT task_id, item_json FROM worklist").fetchall()
        tx.conn.executemany(
            "UPDATE worklist SET item_json = ? WHERE task_id = ?",
            [(pack_item(item), task_id) for task_id, item in rows],
        )
    return "deflated"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fhirmwl-mwl-cpu-")
    services = build_services(load_settings(None, db=f"sqlite:///{tmp}/w.db", validation="off"))
    try:
        load_derived_rows(services, args.n)
        stored = _pack_rows(services)
        source = StoreWorklistSource(services.store)
        for name, keys in QUERIES.items():
            q = WorklistQuery.from_keywords(keys)
            found = len(list(source.find_json_with_ids(q)))
            runs = args.runs if name == "large" else args.runs * 10
            cpu = []
            for _ in range(runs):
                start = time.process_time()
                list(source.find_json_with_ids(q))
                cpu.append(time.process_time() - start)
            print(
                f"[N={args.n}, items {stored}] {name}: {found} items, CPU min "
                f"{min(cpu) * 1000:.2f} ms, median {statistics.median(cpu) * 1000:.2f} ms"
            )
    finally:
        services.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
