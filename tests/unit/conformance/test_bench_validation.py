"""The benchmark command docs/conformance.md quotes runs and prints its three figures."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_bench_validation_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "validation.py"), "--rounds", "10"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "profile + R5 base check" in out and "profile only" in out
    assert "R5 base check on new content" in out and out.count("ms per resource") == 3
