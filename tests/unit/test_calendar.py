"""Business time (rule 7, docs/rules.md): UK, Europe/London, public holidays of England."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.rules.calendar import add_business_hours, is_business_day

LONDON = ZoneInfo("Europe/London")
H48 = timedelta(hours=48)


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "expected", "why"),
    [
        (london(2026, 3, 2, 10), london(2026, 3, 4, 10), "Monday: two whole days later"),
        (london(2026, 3, 5, 10), london(2026, 3, 9, 10), "Thursday: over the weekend"),
        (london(2026, 3, 6, 23, 59, 59), london(2026, 3, 10, 23, 59, 59), "Friday night"),
        (london(2026, 3, 7, 15), london(2026, 3, 11, 0), "Saturday: from Monday's midnight"),
        (london(2026, 3, 8, 0), london(2026, 3, 11, 0), "Sunday midnight"),
        (london(2026, 3, 9, 0), london(2026, 3, 11, 0), "Monday midnight is business time"),
        # Easter 2026 in England: Good Friday 3 April and Easter Monday 6 April.
        (london(2026, 4, 2, 12), london(2026, 4, 8, 12), "Thursday before Good Friday"),
        (london(2026, 4, 3, 12), london(2026, 4, 9, 0), "on Good Friday"),
        (london(2026, 4, 6, 9), london(2026, 4, 9, 0), "on Easter Monday"),
        # Christmas 2026: Fri 25, Sat 26, substitute Boxing Day Mon 28.
        (london(2026, 12, 24, 12), london(2026, 12, 30, 12), "Christmas Eve 2026"),
        # Christmas 2027: Sat 25, Sun 26, substitute days Mon 27 and Tue 28.
        (london(2027, 12, 24, 8), london(2027, 12, 30, 8), "Christmas Eve 2027 (a Friday)"),
        (london(2027, 12, 25, 8), london(2027, 12, 31, 0), "Christmas Day 2027 (Saturday)"),
        # DST: clocks go forward on Sun 29 March 2026 and back on Sun 25 October 2026.
        (london(2026, 3, 27, 10), london(2026, 3, 31, 10), "over the spring change"),
        (london(2026, 10, 23, 10), london(2026, 10, 27, 10), "over the autumn change"),
    ],
)
def test_48_business_hours_in_england(start: datetime, expected: datetime, why: str) -> None:
    result = add_business_hours(start.astimezone(UTC), H48, "Europe/London", "GB-ENG")
    assert result == expected.astimezone(UTC), why
    assert result.tzinfo == UTC


def test_dst_moves_the_utc_result_not_the_local_one() -> None:
    # Friday 10:00 GMT = 10:00 UTC; Tuesday 10:00 BST = 09:00 UTC.
    result = add_business_hours(
        datetime(2026, 3, 27, 10, tzinfo=UTC), H48, "Europe/London", "GB-ENG"
    )
    assert result == datetime(2026, 3, 31, 9, tzinfo=UTC)


def test_without_holidays_only_weekends_are_skipped() -> None:
    good_friday = datetime(2026, 4, 3, 12, tzinfo=UTC)
    assert add_business_hours(good_friday, H48, "UTC", None) == datetime(2026, 4, 7, 12, tzinfo=UTC)


def test_a_few_business_hours_stay_within_the_day() -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert add_business_hours(start, timedelta(hours=1), "UTC", None) == start + timedelta(hours=1)


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (datetime(2026, 12, 28).date(), False),  # Boxing Day (observed)
        (datetime(2027, 12, 28).date(), False),  # Boxing Day (observed)
        (datetime(2027, 12, 29).date(), True),
        (datetime(2026, 5, 4).date(), False),  # Early May bank holiday
    ],
)
def test_substitute_days_are_holidays(day: object, business: bool) -> None:
    assert is_business_day(day, "GB-ENG") is business  # type: ignore[arg-type]
