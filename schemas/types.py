"""Wire-level scalar types shared by inbound messages, outbound events and the policy file.

Money travels as a decimal string and never as a JSON number: a float cannot hold 0.10
exactly, and a refund that is off by a penny is a support ticket.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer

# A plain decimal: optional sign, digits, optional fraction. No exponent, no spaces, no
# "NaN": producers in other languages format money this way and nothing else is money.
_DECIMAL_RE = re.compile(r"^-?\d{1,15}(\.\d{1,6})?$", re.ASCII)

# RFC 3339 date-time with a mandatory offset ("Z" or +hh:mm).
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$",
    re.ASCII,
)


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('money must be a decimal string such as "12.50", not a JSON number')
    if not _DECIMAL_RE.fullmatch(value):
        raise ValueError(f'{value!r} is not a decimal string such as "12.50"')
    return Decimal(value)


_NUMBERS = (int, float, Decimal)


def _parse_measure(value: Any) -> Decimal:
    """Weights and lengths: a JSON number or a decimal string, finite and positive."""
    if isinstance(value, bool):
        raise ValueError("a measure must be a number, not a boolean")
    if isinstance(value, _NUMBERS):  # a tuple: a union type is checked three times slower
        try:
            result = Decimal(str(value))
        except InvalidOperation as exc:  # pragma: no cover - str(float) is always parseable
            raise ValueError(f"{value!r} is not a number") from exc
    elif isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        result = Decimal(value)
    else:
        raise ValueError(f"{value!r} is not a number")
    if not result.is_finite() or result <= 0:
        raise ValueError("a measure must be a finite number greater than 0")
    return result


# Instants accepted anywhere: from the Unix epoch (deadlines are scored in epoch
# seconds; no order predates it) to the year 3000, which leaves thousands of years of
# headroom below datetime.max for any deadline arithmetic, so none can overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no UTC offset")
        return _in_range(value, repr(value.isoformat()))
    if not isinstance(value, str) or not _RFC3339_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp with offset, e.g. 2026-11-26T10:00:00Z"
        )
    text = value.replace("z", "Z").replace("t", "T")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date and time") from exc
    return _in_range(parsed, repr(value))


def _in_range(moment: datetime, shown: str) -> datetime:
    try:  # year 1 with a positive offset, or 9999 with a negative one, has no UTC
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"{shown} is outside the accepted range 1970-01-01 to 2999-12-31 UTC")
    return utc


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _format_decimal(value: Decimal) -> str:
    return format(value, "f")


Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    AfterValidator(_non_negative),
    PlainSerializer(_format_decimal, return_type=str, when_used="json"),
]
"""A non-negative amount of money, a decimal string on the wire."""

Measure = Annotated[
    Decimal,
    BeforeValidator(_parse_measure),
    PlainSerializer(float, return_type=float, when_used="json"),
]
"""A positive weight (kg) or length (cm)."""

Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
]
"""An aware datetime, normalised to UTC; RFC 3339 on the wire."""

# Characters an id may not hold: control characters (NUL, newlines) break logs and
# keys; surrogates cannot be encoded; bidirectional controls make one id look like
# another on screen ("Trojan Source"). Everything else is the producer's business.
_BAD_ID_CHAR = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean_identifier(value: str) -> str:
    """`value` if it holds none of the characters an id may not (ValueError if it does)."""
    if _BAD_ID_CHAR.search(value):
        raise ValueError("an id must not hold control, surrogate or bidirectional characters")
    return value


IDENTIFIER_MAX = 128

Identifier = Annotated[
    str, Field(min_length=1, max_length=IDENTIFIER_MAX), AfterValidator(clean_identifier)
]
"""Ids from other systems: opaque, 1 to 128 characters, no control characters."""

NonEmptyText = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]
"""Free text that must say something (reasons, notes)."""

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 alphabetic code."""

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of the worker's clock an event time may be (docs/rules.md, event time)."""


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix, as every outbound timestamp is written."""
    return _format_timestamp(value)


def parse_timestamp(value: Any) -> datetime:
    """Parse an RFC 3339 timestamp with offset into an aware UTC datetime (ValueError if not)."""
    return _parse_timestamp(value)
