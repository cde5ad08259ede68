"""Business time (docs/rules.md).

Only Monday to Friday that are not public holidays count, in the marketplace's own
timezone; a business day holds 24 business hours, so 48 business hours are two whole
business days. A request on a non-business day starts counting at the next business
day's midnight. Counting happens on local wall-clock time and the result is converted
back to UTC, so a DST change in between moves the UTC result, not the local one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_lib

_DAY = timedelta(days=1)
_MAX_SKIPPED_DAYS = 366  # a calendar with no business day in a year is a broken policy


@lru_cache(maxsize=64)
def _public_holidays(code: str) -> Any:
    # One expanding holiday table per code: the library adds years as they are looked up.
    country, _, subdivision = code.partition("-")
    return holidays_lib.country_holidays(country, subdiv=subdivision or None)


def is_business_day(day: date, holidays: str | None) -> bool:
    if day.weekday() >= 5:
        return False
    return holidays is None or day not in _public_holidays(holidays)


def add_business_hours(
    start: datetime, duration: timedelta, timezone: str, holidays: str | None
) -> datetime:
    """`start` (aware) plus `duration` of business time, as an aware UTC datetime."""
    zone = ZoneInfo(timezone)
    cursor = start.astimezone(zone).replace(tzinfo=None)
    remaining = duration
    skipped = 0
    while True:
        midnight = datetime.combine(cursor.date() + _DAY, time())
        if is_business_day(cursor.date(), holidays):
            skipped = 0
            if remaining <= midnight - cursor:
                return _to_utc(cursor + remaining, zone)
            remaining -= midnight - cursor
        else:
            skipped += 1
            if skipped > _MAX_SKIPPED_DAYS:
                raise ValueError(f"no business day within a year after {cursor.date()}")
        cursor = midnight


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous wall time (autumn change) means its first occurrence.
    return local.replace(tzinfo=zone).astimezone(UTC)
