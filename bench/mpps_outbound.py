"""MPPS and outbound HL7 figures (issue 17): N-CREATE and N-SET COMPLETED round trips from a
pynetdicom modality (one association, ``TCP_NODELAY``), and the lag from a ``$create-order``
201 to the OMI^O23 arriving at an MLLP receiver. In-process server (the ``fhirmwl serve``
code path) on loopback, sequential client. Run: ``python bench/mpps_outbound.py [N] [--pg]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import PG_URL, free_port  # noqa: E402
from tests.integration.mpps.test_mpps_scp import Modality, final, in_progress  # noqa: E402
from tests.integration.orders.conftest import CATALOGUE, order_bundle  # noqa: E402
from tests.integration.outbound.conftest import Receiver  # noqa: E402

from fhirmwl.config import load_settings  # noqa: E402
from fhirmwl.runtime import Runtime  # noqa: E402


def pcts(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = statistics.quantiles(ms, n=20)[-1] if len(ms) > 1 else ms[0]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"


def run(db: str, n: int, catalogue: Path) -> None:
    receiver = Receiver().start()
    dest = [{"name": "pacs", "host": "127.0.0.1", "port": receiver.port}]
    settings = load_settings(
        None,
        db=db,
        http_port=free_port(),
        dicom_port=free_port(),
        mllp=False,
        catalogue=str(catalogue),
        log_level="warning",
        hl7_destinations=dest,
    )
    runtime = Runtime(settings)
    runtime.start()
    lags, creates, sets = [], [], []
    try:
        with httpx.Client(base_url=settings.fhir_base, timeout=60) as api:
            for i in range(n):
                r = api.post("/$create-order", json=order_bundle())
                assert r.status_code == 201, r.text
                done = time.perf_counter()
                while len(receiver.received) <= i:
                    time.sleep(0.0005)
                lags.append(time.perf_counter() - done)
        modality = Modality(settings.dicom_port)
        try:
            for item in modality.worklist():
                t0 = time.perf_counter()
                status, uid = modality.create(in_progress(item))
                t1 = time.perf_counter()
                assert modality.set(uid, final("COMPLETED")).Status == 0 and status.Status == 0
                creates.append(t1 - t0)
                sets.append(time.perf_counter() - t1)
        finally:
            modality.close()
    finally:
        runtime.stop()
        receiver.stop()
    print(f"{db.split(':')[0]}: {n} orders")
    print(f"  201 → OMI^O23 at the receiver: {pcts(lags)}")
    print(f"  MPPS N-CREATE IN PROGRESS:     {pcts(creates)}")
    print(f"  MPPS N-SET COMPLETED:          {pcts(sets)}")


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "50"))
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = Path(tmp) / "catalogue.toml"
        catalogue.write_text(CATALOGUE)
        run(f"sqlite:///{tmp}/bench.db", n, catalogue)
        if "--pg" in sys.argv:
            import uuid

            import psycopg

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                run(f"{PG_URL}?schema={schema}", n, catalogue)
            finally:
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
