"""The guide's example instances in our resource model (examples/*.json), for the tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "examples"


def load_example(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def _load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.json"))


def example_store() -> dict[str, dict[str, Any]]:
    """``Type/id`` → resource for every single-resource example (a resolver's backing)."""
    store = {}
    for name in example_names():
        res = _load(name)
        if res["resourceType"] != "Bundle":
            store[f"{res['resourceType']}/{res['id']}"] = res
    return store
