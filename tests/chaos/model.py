"""The oracle's vocabulary: the rules' terms (docs/rules.md), times, and the
outcomes it expects. Like the whole oracle, imports nothing from `worker/` or `schemas/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CENT = Decimal("0.01")
SELLER_FAULT = frozenset(
    {"damaged", "defective", "wrong_item", "missing_items", "not_as_described", "not_received"}
)
# England and Wales bank holidays (gov.uk), substitute days included, around the run.
GB_ENG_HOLIDAYS = frozenset(
    date(year, month, day)
    for year, month, day in (
        (2025, 12, 25),
        (2025, 12, 26),
        (2026, 1, 1),
        (2026, 4, 3),
        (2026, 4, 6),
        (2026, 5, 4),
        (2026, 5, 25),
        (2026, 8, 31),
        (2026, 12, 25),
        (2026, 12, 28),
        (2027, 1, 1),
        (2027, 3, 26),
        (2027, 3, 29),
        (2027, 5, 3),
        (2027, 5, 31),
        (2027, 8, 30),
        (2027, 12, 27),
        (2027, 12, 28),
    )
)


@dataclass(frozen=True)
class Terms:
    """Contract section 4 defaults, and section 5's built-in UK."""

    return_window: timedelta = timedelta(days=14)
    business_hours: bool = False
    carrier: str | None = None  # None: not compared (the built-in default has no name)
    rates: tuple[tuple[Decimal, Decimal], ...] = ()
    max_weight: Decimal | None = None
    max_perimeter: Decimal | None = None
    max_value: Decimal | None = None
    postage_cap: Decimal | None = None
    free_cancel: timedelta = HOUR
    cancel_response: timedelta = timedelta(hours=48)
    unpaid_after: timedelta = timedelta(hours=48)
    return_response: timedelta = timedelta(hours=48)
    resubmit: timedelta = timedelta(hours=48)
    tracking: timedelta = timedelta(days=5)
    label: timedelta = timedelta(days=14)
    receipt: timedelta = timedelta(days=8)
    replacement: timedelta = timedelta(days=2)  # 1.2: business days where business_hours
    offer: timedelta = timedelta(hours=24)  # 1.2: calendar time


UK = Terms(
    return_window=timedelta(days=30),
    business_hours=True,
    carrier="Evri",
    rates=(
        (Decimal(2), Decimal("2.99")),
        (Decimal(5), Decimal("4.49")),
        (Decimal(15), Decimal("6.99")),
    ),
    max_weight=Decimal(15),
    max_perimeter=Decimal(245),
    max_value=Decimal(1500),
    postage_cap=Decimal("6.99"),
)
TERMS = {"UK": UK}


def terms_for(marketplace: str) -> Terms:
    return TERMS.get(marketplace, Terms())


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def uk_business_hours(start: datetime, hours: timedelta) -> datetime:
    """Rule 7: business days hold 24 h each, counted in London local time; a request on a
    non-business day starts at the next business day's midnight."""
    zone = ZoneInfo("Europe/London")
    cursor = start.astimezone(zone).replace(tzinfo=None)
    remaining = hours
    while True:
        midnight = datetime.combine(cursor.date() + DAY, time())
        business = cursor.weekday() < 5 and cursor.date() not in GB_ENG_HOLIDAYS
        if business and remaining <= midnight - cursor:
            return (cursor + remaining).replace(tzinfo=zone).astimezone(UTC)
        if business:
            remaining -= midnight - cursor
        cursor = midnight


@dataclass
class Outcome:
    """One logical outcome: `ref` is the request id, the refused message id
    (`action.rejected`) or "" (once per order)."""

    order_id: str
    type: str
    ref: str
    data: dict[str, Any]
    due: datetime | None = None  # set when a timer caused it
    optional: bool = False  # may or may not happen (a label that loses to a refund)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.order_id, self.type, self.ref)


@dataclass
class Request:
    request_id: str
    kind: str
    method: str | None
    reason: str
    items: dict[str, int]
    attempt: int
    requested_at: datetime
    cost: Decimal
    payer: str
    status: str = "requested"
    approved_at: datetime | None = None
    shipped_back: bool = False
    postage: Decimal = Decimal(0)
    label: Outcome | None = None
    again: dict[str, int] | None = None  # 1.2: its units asked for the second time
    offer: dict[str, Any] | None = None  # 1.2: the seller's offer and its status
