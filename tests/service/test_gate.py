"""Backlog safety's gate: when a due deadline must wait for inbound messages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.factories import T0
from worker.rules.state import Deadline
from worker.service_layer.backlog import BARRIER, INFLIGHT, Gate

DUE = T0
NOW = T0 + timedelta(seconds=1)
DEADLINE = Deadline(kind="cancel_response", due_at=DUE)


def gate(depth=0, inflight=None) -> Gate:
    return Gate(
        backlog=lambda _: (depth, inflight or {}),
        stale_after=timedelta(minutes=10),
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    ("depth", "inflight", "after_barrier", "expected"),
    [
        (0, {}, False, None),
        (3, {}, False, BARRIER),  # queued messages: go through the queue's tail first
        (3, {}, True, None),  # through the barrier: what is queued now came later
        (0, {"t": (DUE - timedelta(hours=1), NOW)}, True, INFLIGHT),  # answered at 47 h
        (0, {"t": (DUE, NOW)}, True, INFLIGHT),  # exactly at the due time: not after it
        (0, {"t": (DUE + timedelta(seconds=1), NOW)}, True, None),  # after the deadline
        (0, {"t": (DUE - timedelta(hours=1), NOW - timedelta(minutes=11))}, True, None),
    ],
    ids=[
        "clear",
        "queue-behind",
        "after-barrier",
        "earlier-in-flight",
        "in-flight-at-due",
        "later-in-flight",
        "stale-entry",
    ],
)
def test_gate(depth, inflight, after_barrier, expected):
    assert gate(depth, inflight)("o-1", DEADLINE, after_barrier) == expected


def test_a_hold_timer_never_waits():
    hold = Deadline(kind="hold", ref="m-1", due_at=DUE)
    assert gate(5, {"t": (DUE - timedelta(hours=1), NOW)})("o-1", hold, False) is None
