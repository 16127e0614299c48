"""Profile validation cost per resource (it runs on every create/update of a profiled resource).

    python bench/validation.py [--rounds 200]

Validates the guide's example instances (tests/unit/conformance/examples) repeatedly, with and
without the R5 base structure check (cached by content, as on the write path), and once
uncached, and prints the mean time per resource. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fhirmwl.fhir import structure
from fhirmwl.validation import validate

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "unit" / "conformance" / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    resources = [
        json.loads(p.read_text("utf-8"))
        for p in sorted(EXAMPLES.glob("*.json"))
        if not p.stem.startswith("Bundle")
    ]
    for base in (True, False):
        for res in resources:
            validate(res, base=base)  # warm the compiled-profile cache
        start = time.perf_counter()
        for _ in range(args.rounds):
            for res in resources:
                validate(res, base=base)
        per = (time.perf_counter() - start) / (args.rounds * len(resources)) * 1000
        label = "profile + R5 base check" if base else "profile only"
        print(
            f"validation ({label}): {per:.3f} ms per resource "
            f"({len(resources)} example resources x {args.rounds} rounds)"
        )
    # The write path's base R5 check (models + base rules + core invariants) on content it has
    # not seen yet: what a create costs when its content is new (the check is cached by content).
    start = time.perf_counter()
    for _ in range(args.rounds // 10 or 1):
        structure._cached_issues.cache_clear()
        for res in resources:
            structure.structure_issues(res["resourceType"], res)
    per = (time.perf_counter() - start) / ((args.rounds // 10 or 1) * len(resources)) * 1000
    print(f"R5 base check on new content (write path, uncached): {per:.3f} ms per resource")


if __name__ == "__main__":
    main()
