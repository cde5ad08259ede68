"""Policy durations (docs/rules.md, policy file): ISO 8601 text that keeps days apart from hours.

A window given in days counts local calendar days in the marketplace's timezone; one
given in hours (or smaller units) counts elapsed time (docs/rules.md).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

# ISO 8601 durations of days and smaller units. Years and months are refused: "P1M" has
# no fixed length, and a deadline must have one.
_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.ASCII,
)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not an ISO 8601 duration such as "PT48H" or "P14D"')
    match = _DURATION_RE.fullmatch(value)
    if not match:
        raise ValueError(
            f"{value!r} is not an ISO 8601 duration in weeks, days, hours, minutes or seconds "
            '(such as "PT48H" or "P14D"; months and years have no fixed length)'
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    result = timedelta(**parts)
    if result <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than zero")
    return result


@dataclass(frozen=True)
class Window:
    """A policy duration that keeps days apart from hours (docs/rules.md: local days).

    `days` are calendar days in the marketplace's timezone: P30D ends at the same local
    time 30 days later, whatever clock change lies between. `clock` is elapsed time:
    PT720H is 720 hours. Weeks count as 7 days.
    """

    days: int
    clock: timedelta

    def after(self, start: datetime, timezone: str) -> datetime:
        """The end of the window opened at `start` (aware), as an aware UTC datetime."""
        moved = start
        if self.days:
            zone = zoneinfo.ZoneInfo(timezone)
            local = start.astimezone(zone).replace(tzinfo=None) + timedelta(days=self.days)
            # fold=0: an ambiguous local time (autumn change) means its first occurrence;
            # one skipped by the spring change is read with the offset before it.
            moved = local.replace(tzinfo=zone).astimezone(UTC)
        return moved + self.clock

    @property
    def nominal(self) -> timedelta:
        """Days as 24 hours: for business-hour counting and for ordering two windows."""
        return timedelta(days=self.days) + self.clock

    def __str__(self) -> str:
        """ISO 8601 as it was given: P30D stays P30D, PT720H stays PT720H."""
        hours, rest = divmod(self.clock.total_seconds(), 3600)
        minutes, seconds = divmod(rest, 60)
        clock = "".join(
            f"{int(n) if n == int(n) else n}{unit}"
            for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
            if n
        )
        return "P" + (f"{self.days}D" if self.days else "") + (f"T{clock}" if clock else "")


def parse_window(value: Any) -> Window:
    if isinstance(value, Window):
        return value
    length = parse_duration(value)  # validates the text and that it is longer than zero
    match = _DURATION_RE.fullmatch(value)
    assert match is not None  # parse_duration accepted it
    days = int(match["days"] or 0) + 7 * int(match["weeks"] or 0)
    return Window(days=days, clock=length - timedelta(days=days))


Duration = Annotated[
    Window,
    PlainValidator(parse_window),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "duration",
            "description": "ISO 8601: days (P30D) are local calendar days, "
            "hours (PT48H) are elapsed hours",
        }
    ),
]
