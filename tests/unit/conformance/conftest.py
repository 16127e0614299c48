"""Fixtures of the conformance tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _conformance_examples import load_example


@pytest.fixture
def example() -> Callable[[str], dict[str, Any]]:
    """Fresh deep copy of a named example, so tests can mutate it."""
    return load_example
