"""Slowing down password guessing at the login form: a per-user counter in process memory.

After ``free`` failed logins in a row a user name is locked for ``base`` seconds, doubling with
every further failure up to ``cap``; a successful login clears the counter. The lock applies to
the name, whoever tries it, so a correct password during the lock is refused too (the page says
when to try again). Per process on purpose: simple, nothing to clean up in the database, and
with N processes an attacker gets at most N times the attempts. Pure apart from the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    free: int = 5
    base: float = 30.0
    cap: float = 900.0
    clock: Callable[[], float] = time.monotonic
    max_names: int = 10000
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        with self._lock:
            count, last = self._failures.get(name, (0, 0.0))
        if count < self.free:
            return 0.0
        lock = min(self.cap, self.base * 2 ** (count - self.free))
        return max(0.0, last + lock - self.clock())

    def failed(self, name: str) -> None:
        with self._lock:
            if len(self._failures) >= self.max_names and name not in self._failures:
                self._failures.pop(next(iter(self._failures)))  # the oldest name
            count, _ = self._failures.get(name, (0, 0.0))
            self._failures[name] = (count + 1, self.clock())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
