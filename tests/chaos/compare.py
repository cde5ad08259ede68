"""Expected outcomes (the oracle's) against the CloudEvents seen on `aftersales.events`.

A logical outcome is (order id, event type, ref), ref being the request id, the refused
message id (`action.rejected`, a probe's pair under one ref) or "" for once-per-order
events. Two copies with the same CloudEvent `id` are a permitted redelivery; two
different ids for one logical outcome are a duplicate. Imports nothing from the worker.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.chaos.oracle import Outcome, parse_time

Key = tuple[str, str, str]
REQUEST_EVENTS = ("return.", "refund.initiated", "offer.", "replacement.")


def event_key(event: dict[str, Any], aliases: dict[str, str]) -> Key:
    data = event.get("data") or {}
    type_ = str(event.get("type"))
    ref = ""
    if type_.startswith(REQUEST_EVENTS):
        ref = data.get("request_id") or ""
    elif type_ == "action.rejected":
        ref = aliases.get(data.get("message_id", ""), data.get("message_id", ""))
    return (str(event.get("subject")), type_, str(ref))


def _same(expected: Any, seen: Any) -> bool:
    """Money compared as Decimal, times as instants, dicts on the expected keys only."""
    if isinstance(expected, dict):
        return isinstance(seen, dict) and all(
            _same(value, seen.get(name)) for name, value in expected.items()
        )
    if isinstance(expected, Decimal):
        try:
            return seen is not None and Decimal(str(seen)) == expected
        except InvalidOperation:
            return False
    if isinstance(expected, datetime):
        try:
            return seen is not None and parse_time(str(seen)) == expected
        except ValueError:
            return False
    return bool(expected == seen)


@dataclass
class Seen:
    ids: dict[str, dict[str, Any]] = field(default_factory=dict)  # CloudEvent id -> event
    first_arrival: float = 0.0  # wall clock (time.time())
    copies: int = 0


@dataclass
class Comparison:
    expected: int = 0
    optional: int = 0
    seen: int = 0
    events: int = 0
    redeliveries: int = 0
    missing: list[Outcome] = field(default_factory=list)
    duplicated: list[tuple[Key, list[str]]] = field(default_factory=list)
    wrong: list[tuple[Key, str]] = field(default_factory=list)
    lateness: list[tuple[float, Key, datetime]] = field(default_factory=list)

    def summary(self) -> list[str]:
        lines = [
            f"expected   {self.expected} (+{self.optional} optional: labels that may lose "
            "to an earlier end of their request)",
            f"seen       {self.seen} distinct outcomes from {self.events} events "
            f"({self.redeliveries} redelivered copies with the same id)",
            f"missing    {len(self.missing)}",
            f"duplicated {len(self.duplicated)}",
            f"wrong      {len(self.wrong)}",
        ]
        if self.lateness:
            values = sorted(late for late, _, _ in self.lateness)
            late, key, due = max(self.lateness)
            lines.append(
                f"deadlines  {len(values)} fired during the run: lateness p50 "
                f"{statistics.median(values):.2f} s, p99 {values[int(len(values) * 0.99)]:.2f} s; "
                f"slowest {late:.2f} s ({key[1]} of {key[0]}, due {due.isoformat()})"
            )
        return lines

    def details(self, limit: int = 20) -> list[str]:
        lines = [f"MISSING {o.key} {o.data}" for o in self.missing[:limit]]
        lines += [f"DUPLICATED {key} ids {ids}" for key, ids in self.duplicated[:limit]]
        lines += [f"WRONG {key}: {why}" for key, why in self.wrong[:limit]]
        return lines

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.duplicated or self.wrong)


def compare(
    expected: Iterable[Outcome],
    seen: dict[Key, Seen],
    sent_at: dict[str, float],
    start: float,
) -> Comparison:
    """`sent_at`: wall time each order's last stage was sent; `start`: wall time the run
    started (deadlines due before it are not timed)."""
    result = Comparison()
    wanted: dict[Key, Outcome] = {}
    for outcome in expected:
        if outcome.key in wanted:
            raise AssertionError(f"the oracle expects {outcome.key} twice")
        wanted[outcome.key] = outcome
    result.expected = sum(1 for o in wanted.values() if not o.optional)
    result.optional = len(wanted) - result.expected
    for key, copies in seen.items():
        result.events += copies.copies
        result.redeliveries += copies.copies - len(copies.ids)
        if key not in wanted:
            event = next(iter(copies.ids.values()))
            result.wrong.append((key, f"unexpected: {event.get('data')}"))
            continue
        result.seen += 1
        if len(copies.ids) > 1:
            result.duplicated.append((key, sorted(copies.ids)))
        outcome = wanted[key]
        for event in copies.ids.values():
            if not _same(outcome.data, event.get("data")):
                result.wrong.append((key, f"expected {outcome.data}, seen {event.get('data')}"))
                break
        due = outcome.due
        if due is not None and due.timestamp() > start:
            began = max(due.timestamp(), sent_at.get(key[0], start))
            result.lateness.append((copies.first_arrival - began, key, due))
    result.missing = [o for key, o in wanted.items() if key not in seen and not o.optional]
    return result
