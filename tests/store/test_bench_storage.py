"""The documented ``bench/storage.py`` command runs and breaks the storage down by table."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_storage_bench_prints_bytes_per_order_and_tables() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench/storage.py"), "--backend", "sqlite", "--n", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    total = re.search(r"storage: ([\d,]+) bytes per order graph", done.stdout)
    assert total is not None, done.stdout
    tables = dict(re.findall(r"^\s+(\w+)\s+([\d,]+) B/order", done.stdout, re.M))
    assert {"resource", "idx_ref", "worklist"} <= set(tables), done.stdout
    assert sum(int(v.replace(",", "")) for v in tables.values()) <= int(
        total.group(1).replace(",", "")
    )
