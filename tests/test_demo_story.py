"""The demo's UK scene finds a recent bank holiday and the business day before it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from worker.cli.demo.story import business_day_before, day_off_to_ask_before, last_bank_holiday


@pytest.mark.parametrize(
    ("today", "holiday"),
    [
        (date(2026, 11, 29), date(2026, 8, 31)),  # Late Summer Bank Holiday, a Monday
        (date(2026, 1, 5), date(2025, 12, 26)),  # New Year's Day is less than a week ago
        (date(2026, 4, 20), date(2026, 4, 6)),  # Easter Monday
    ],
)
def test_the_latest_weekday_holiday_at_least_a_week_old(today, holiday):
    assert last_bank_holiday(today) == holiday


@pytest.mark.parametrize(
    ("holiday", "before"),
    [
        (date(2026, 8, 31), date(2026, 8, 28)),  # Monday: the Friday before
        (date(2025, 12, 26), date(2025, 12, 24)),  # Boxing Day: Christmas is no business day
        (date(2026, 4, 6), date(2026, 4, 2)),  # Easter Monday: before Good Friday
    ],
)
def test_thebusiness_day_before_skips_weekends_and_holidays(holiday, before):
    assert business_day_before(holiday) == before


def test_a_day_off_within_the_retention_else_the_last_weekend():
    # 60 days: the Late Summer Bank Holiday (31 Aug) is too old on 29 Nov; a weekend is not.
    assert day_off_to_ask_before(date(2026, 11, 29), timedelta(days=60)) == (
        date(2026, 11, 21),
        "the weekend",
    )
    assert day_off_to_ask_before(date(2026, 11, 29), timedelta(days=120)) == (
        date(2026, 8, 31),
        "Late Summer Bank Holiday",
    )
    assert day_off_to_ask_before(date(2026, 4, 20), timedelta(days=60))[0] == date(2026, 4, 6)
