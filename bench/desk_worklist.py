"""How long the web desk's worklist page takes on a large day (issue 16, "paging for large days").

Loads N steps spread over a year on 40 stations (``mwl_data``, index rows written directly),
starts ``fhirmwl serve`` and times ``GET /ui/worklist`` for one day (all stations; one station)
and the live-update fragment (``partial=1``) — the request every open desk makes after a change.

    .venv/bin/python bench/desk_worklist.py [--n 200000] [--runs 30] [--db URL]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time

from _common import Client, Server, summary_ms
from mwl_data import load_derived_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    from fhirmwl.config import load_settings
    from fhirmwl.wiring import build_services

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/desk.db"
        services = build_services(load_settings(None, db=db))
        try:
            with services.store.read() as tx:
                present = tx.conn.execute("SELECT COUNT(*) FROM worklist").fetchone()[0]
            if present == 0:  # a --db that already holds the data is reused as it is
                seconds = load_derived_rows(services, args.n)
                print(f"loaded {args.n} steps in {seconds:.1f} s")
        finally:
            services.close()
        server = Server(db, "--no-mllp", "--no-dicom")
        try:
            client = Client(server.port)
            day = "2026-06-15"
            for label, path in (
                ("one day, all stations, page of 50", f"/ui/worklist?date={day}"),
                ("one day, station CT00", f"/ui/worklist?date={day}&station=CT00"),
                ("live fragment, one day", f"/ui/worklist?date={day}&partial=1"),
            ):
                status, body = client.request("GET", path)
                assert status == 200, body[:500]
                total = re.search(rb"(\d+) scheduled step", body)
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    client.request("GET", path)
                    times.append(time.perf_counter() - started)
                matched = total.group(1).decode() if total else "?"
                print(f"{label} ({matched} matching steps): {summary_ms(times)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
