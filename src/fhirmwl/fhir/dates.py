"""FHIR date/dateTime/instant values as comparable UTC ranges.

Both the index rows and the search parser turn a (possibly partial) FHIR date into a closed range
``[lo, hi]`` of fixed-width UTC strings, so that SQL can compare them as text on SQLite and
PostgreSQL alike. Values without a time zone are taken as UTC (documented in docs/api.md).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_FMT = "%Y-%m-%dT%H:%M:%S.%f"
_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _tz(offset: str | None) -> timedelta:
    if not offset or offset == "Z":
        return timedelta(0)
    sign = 1 if offset[0] == "+" else -1
    return sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))


def date_range(value: str) -> tuple[str, str]:
    """Return the UTC range a partial FHIR date covers; raise ValueError when malformed.
    Cached: every write indexes its dates and checks its periods (per-1), mostly the same few."""
    if isinstance(value, str):
        return _cached_range(value)
    return _date_range(value)


@lru_cache(maxsize=4096)
def _cached_range(value: str) -> tuple[str, str]:
    return _date_range(value)


def _date_range(value: str) -> tuple[str, str]:
    m = _DATE_RE.match(value.strip())
    if not m:
        raise ValueError(f"not a FHIR date/dateTime: {value!r}")
    year, month, day, hh, mi, ss, frac, offset = m.groups()
    y = int(year)
    if month is None:
        lo = datetime(y, 1, 1)
        hi = datetime(y, 12, 31, 23, 59, 59, 999999)
    elif day is None:
        mo = int(month)
        last = calendar.monthrange(y, mo)[1]
        lo = datetime(y, mo, 1)
        hi = datetime(y, mo, last, 23, 59, 59, 999999)
    elif hh is None:
        lo = datetime(y, int(month), int(day))
        hi = lo + timedelta(days=1, microseconds=-1)
    else:
        base = datetime(y, int(month), int(day), int(hh), int(mi))
        if ss is None:
            lo, hi = base, base + timedelta(minutes=1, microseconds=-1)
        elif frac is None:
            lo = base.replace(second=int(ss))
            hi = lo + timedelta(seconds=1, microseconds=-1)
        else:
            micro = int((frac[1:] + "000000")[:6])
            lo = hi = base.replace(second=int(ss), microsecond=micro)
        shift = _tz(offset)
        lo, hi = lo - shift, hi - shift
    return lo.strftime(_FMT), hi.strftime(_FMT)


def period_range(period: dict[str, str]) -> tuple[str, str]:
    lo = date_range(period["start"])[0] if period.get("start") else "0001-01-01T00:00:00.000000"
    hi = date_range(period["end"])[1] if period.get("end") else "9999-12-31T23:59:59.999999"
    return lo, hi


def now_instant() -> str:
    """The current time as a FHIR instant (UTC, millisecond precision)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_key(instant: str) -> str:
    return date_range(instant)[0]
