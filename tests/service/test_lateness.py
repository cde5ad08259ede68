"""Lateness is counted from the right instant: the later of the due time and the moment
the worker first knew the deadline; the figure since the due time is kept apart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.service.fakes import FakeStore
from tests.service.test_service import make_service
from tests.support.factories import T0, hours, order_placed, paid
from worker.rules.state import Deadline
from worker.service_layer.ports import Lateness

DUE = T0 + hours(48)
S = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("known_at", "fired_at", "ms", "since_due_ms"),
    [
        (DUE - DAY, DUE, 0.0, 0.0),  # known long before, fired on the dot
        (DUE - DAY, DUE + S, 1000.0, 1000.0),  # known long before, a second late
        (DUE, DUE + S, 1000.0, 1000.0),  # known exactly at its due time
        (DUE + timedelta(milliseconds=1), DUE + S, 999.0, 1000.0),  # known a ms after
        (DUE + DAY, DUE + DAY, 0.0, 86_400_000.0),  # backdated a day, fired at once
        (DUE + DAY, DUE + DAY + S / 4, 250.0, 86_400_250.0),  # backdated, 250 ms late
        (None, DUE + DAY, 86_400_000.0, 86_400_000.0),  # stored before known_at: since due
    ],
)
def test_lateness_table(known_at, fired_at, ms, since_due_ms):
    deadline = Deadline(kind="unpaid_expiry", due_at=DUE, known_at=known_at)

    late = Lateness.of(deadline, fired_at)

    assert (late.ms, late.since_due_ms) == (ms, since_due_ms)
    assert Lateness.parse(late.stored()) == late


def test_a_backdated_deadline_is_late_only_from_when_its_message_arrived():
    """Given an order placed three days before it reached the worker (its 48 h unpaid
    expiry was due a day before that), when the timer fires 2 s after the commit, then
    the lateness is 2 s and the day of backdating is kept apart."""
    store = FakeStore()
    arrived = T0 + hours(72)
    placed = order_placed(at=T0)
    make_service(now=arrived, store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    assert deadline.known_at == arrived

    fired = make_service(now=arrived + 2 * S, store=store).fire(placed.order_id, deadline)

    assert fired.status == "applied"
    assert store.lateness == [2000.0]
    assert store.since_due == [(24 * 3600 + 2) * 1000.0]


def test_known_at_is_kept_while_the_due_time_is_kept_and_renewed_when_it_moves():
    """Given a deadline known at placement, a later message that leaves it alone keeps its
    known_at; one that replaces it with another due time stamps the new one."""
    store = FakeStore()
    placed = order_placed(at=T0)
    make_service(now=T0 + S, store=store).handle_message(placed)
    (before,) = store.load(placed.order_id).state.deadlines.values()
    assert before.known_at == T0 + S

    make_service(now=T0 + hours(1), store=store).handle_message(
        paid(placed.order_id, T0 + hours(1))
    )

    after = store.load(placed.order_id).state.deadlines
    assert before.id not in after  # paid: the unpaid expiry is gone
    assert all(d.known_at == T0 + hours(1) for d in after.values())
