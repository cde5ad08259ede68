"""Retention (worker/rules/retention.py): when an order's keys start to expire, and which
late message can only belong to an expired order. Edges at exactly the retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from worker.rules import new_state
from worker.rules.retention import expires_in, is_expired, retention_start

RETENTION = timedelta(days=60)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("age", "expired"),
    [(RETENTION - SECOND, False), (RETENTION, True), (RETENTION + SECOND, True)],
    ids=["one second younger", "exactly the retention", "one second older"],
)
def test_a_message_for_an_order_without_state_expires_at_exactly_the_retention(
    age: timedelta, expired: bool
) -> None:
    now = T0 + days(100)
    assert is_expired(None, now - age, now, RETENTION) is expired
    # An order that is only held messages (no order facts yet) is no order either.
    assert is_expired(new_state("o-1"), now - age, now, RETENTION) is expired


def test_a_message_for_a_known_order_is_never_expired_however_old() -> None:
    timeline = Timeline("o-known")
    timeline.send(f.order_placed("o-known", T0))
    now = T0 + days(400)
    assert not is_expired(timeline.state, T0, now, RETENTION)


def test_an_order_with_a_pending_deadline_or_open_request_is_kept() -> None:
    timeline = Timeline("o-open")
    timeline.send(f.order_placed("o-open", T0))  # unpaid expiry pending
    assert retention_start(timeline.state, T0) is None
    assert expires_in(timeline.state, T0, RETENTION) is None


def test_a_cancelled_order_expires_retention_after_its_last_activity() -> None:
    timeline = Timeline("o-cancel")
    timeline.send(f.order_placed("o-cancel", T0), f.paid("o-cancel", T0))
    timeline.send(f.cancel_requested("o-cancel", T0 + hours(0.5)))  # free window: at once
    assert timeline.state.cancellation is not None and not timeline.state.deadlines
    now = T0 + hours(2)
    assert retention_start(timeline.state, now) == now
    assert expires_in(timeline.state, now, RETENTION) == RETENTION
    # An order.placed a little ahead of the clock: retention starts at its event time.
    assert retention_start(timeline.state, T0 - hours(1)) == T0


def test_a_delivered_order_is_kept_until_its_return_window_ends_then_retention() -> None:
    oid = "o-delivered"
    timeline = Timeline(oid)
    timeline.send(f.order_placed(oid, T0), f.paid(oid, T0 + hours(1)))
    timeline.send(f.shipped(oid, T0 + days(1)), f.delivered(oid, T0 + days(3)))
    state = timeline.state
    assert not state.deadlines and state.policy is not None
    # UK: 30 local days after delivery (across the March clock change: an hour less)
    window_end = state.policy.end(state.policy.return_window, T0 + days(3))
    assert window_end == T0 + days(33) - hours(1)
    now = T0 + days(4)
    assert retention_start(state, now) == window_end
    assert expires_in(state, now, RETENTION) == window_end - now + RETENTION
    # When the keys are gone, the order's order.placed (and any return request made in
    # the window) is at least the retention old: refused, never a new order.
    gone = now + (window_end - now + RETENTION)
    assert is_expired(None, T0, gone, RETENTION)
    assert is_expired(None, window_end, gone, RETENTION)


def test_an_appealed_return_keeps_the_order_though_no_deadline_waits() -> None:
    oid = "o-appeal"
    timeline = Timeline(oid)
    timeline.send(f.order_placed(oid, T0), f.paid(oid, T0 + hours(1)))
    timeline.send(f.shipped(oid, T0 + days(1)), f.delivered(oid, T0 + days(2)))
    request = f.return_requested(oid, T0 + days(3), request_id="r1", method="self_arrange")
    timeline.send(request)
    timeline.send(f.return_rejected(oid, "r1", T0 + days(3) + hours(1)))
    timeline.send(f.appeal_submitted(oid, "r1", T0 + days(3) + hours(2)))
    state = timeline.state
    assert state.returns["r1"].status == "appealed" and not state.deadlines
    assert retention_start(state, T0 + days(200)) is None


def test_the_setting_is_an_iso_8601_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import Settings, SettingsError

    monkeypatch.setenv("AFTERSALES_RETENTION", "P90D")
    assert Settings.from_env().retention == days(90)
    monkeypatch.delenv("AFTERSALES_RETENTION")
    assert Settings.from_env().retention == timedelta(days=60)
    monkeypatch.setenv("AFTERSALES_RETENTION", "60 days")
    with pytest.raises(SettingsError, match="AFTERSALES_RETENTION"):
        Settings.from_env()
