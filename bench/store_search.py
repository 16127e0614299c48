"""Search time in the store, in process (no HTTP): the searches of ``bench/fhir_api.py`` and a
few more, on a database kept by ``bench/storage.py --keep``. Prints CPU time (process time) per
search, the median of ``--rounds`` rounds; asserts nothing. Through HTTP a search costs 0.5 ms
or more of which the SQL is a small part; this isolates the SQL.

    python bench/storage.py --n 3000 --keep        # prints the kept database's URL
    python bench/store_search.py --db sqlite:////tmp/fhirmwl-storage-…/s.db --n 3000
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhirmwl.fhir.search import parse_search  # noqa: E402
from fhirmwl.store import open_store  # noqa: E402

FORMS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "identifier": ("ServiceRequest", [("identifier", "urn:acsn|ACC{k}")]),
    "Task identifier": ("Task", [("identifier", "SPS{k}")]),
    "name prefix": ("Patient", [("family", "FAM{m}"), ("_count", "20")]),
    "date+modality": (
        "Task",
        [
            ("requested-period", "ge2026-02-03"),
            ("requested-period", "lt2026-02-04"),
            ("modality", "CT"),
            ("_count", "50"),
        ],
    ),
    "status, 20 of many": ("Task", [("status", "requested"), ("_count", "20")]),
    "chain subject:Patient.family": ("ServiceRequest", [("subject:Patient.family", "FAM{m}")]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", required=True)
    ap.add_argument("--n", type=int, default=3000, help="order graphs in the database")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    store = open_store(args.db)
    try:
        for label, (res_type, params) in FORMS.items():
            per_round = []
            for _ in range(args.rounds):
                gc.collect()  # not the previous search's garbage in this one's time
                rnd = random.Random(7)
                found = 0
                start = time.process_time()
                with store.read() as tx:
                    for _ in range(args.queries):
                        k = rnd.randrange(args.n)
                        q = parse_search(
                            res_type, [(n, v.format(k=k, m=k % 5000)) for n, v in params]
                        )
                        found += len(tx.search(q))
                per_round.append((time.process_time() - start) / args.queries)
            ms = statistics.median(per_round) * 1000
            print(f"{label:30s} {ms:7.3f} ms CPU per search ({found / args.queries:.1f} found)")
    finally:
        store.close()


if __name__ == "__main__":
    main()
