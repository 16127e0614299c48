"""The documented ``bench/order_statements.py`` command runs, and shows one transaction per order
on every door (the v2 retransmission check shares the message's unit of work; the order-graph
transaction Bundle is one unit of work)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_order_statements_bench_runs_one_transaction_per_order() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/order_statements.py"),
            "--backend",
            "sqlite",
            "--n",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("sqlite ")]
    kinds = [line.split(":")[0] for line in lines]
    assert kinds == ["sqlite $create-order", "sqlite v2 NW", "sqlite transaction"]
    assert all("statements in 1.0 transactions" in line for line in lines), done.stdout
