"""Retention (worker/rules/retention.py): when an order's keys start to expire, how long
its tombstone outlives them, and which message is for an order known to have expired
(1.2: only one whose tombstone is there; never an order not seen before, however old)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from worker.rules import new_state
from worker.rules.retention import (
    expires_in,
    is_expired,
    retention_start,
    tombstone_after,
    tombstone_in,
)

RETENTION = timedelta(days=60)
TOMBSTONE = timedelta(days=180)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("tombstone", "expired"),
    [(False, False), (True, True)],
    ids=["never seen: a new order", "closed and expired: refused"],
)
def test_a_message_for_an_order_without_state_is_expired_only_with_its_tombstone(
    tombstone: bool, expired: bool
) -> None:
    assert is_expired(None, tombstone) is expired
    # An order that is only held messages (no order facts yet) is no order either.
    assert is_expired(new_state("o-1"), tombstone) is expired


def test_the_issues_uk_order_placed_61_days_ago_is_a_new_order() -> None:
    """Placed 61 days ago, delivered 20 days ago, its messages arriving now: the worker
    never saw it, so it is a new order, and its return inside the 30 days is answered."""
    now = T0 + days(61)
    oid = "o-onboarded"
    assert not is_expired(None, tombstone=False)
    timeline = Timeline(oid)
    timeline.send(f.order_placed(oid, T0), now=now)
    timeline.send(f.paid(oid, T0 + hours(1)), now=now)
    timeline.send(f.shipped(oid, T0 + days(2)), now=now)
    timeline.send(f.delivered(oid, now - days(20)), now=now)
    timeline.send(f.return_requested(oid, now - days(1), method="self_arrange"), now=now)
    assert timeline.types()[-1] == "return.requested" and timeline.dead_letters == []


def test_a_message_for_a_known_order_is_never_expired_however_old() -> None:
    timeline = Timeline("o-known")
    timeline.send(f.order_placed("o-known", T0))
    assert not is_expired(timeline.state, tombstone=True)


def test_an_order_with_a_pending_deadline_or_open_request_is_kept() -> None:
    timeline = Timeline("o-open")
    timeline.send(f.order_placed("o-open", T0))  # unpaid expiry pending
    assert retention_start(timeline.state, T0) is None
    assert expires_in(timeline.state, T0, RETENTION) is None
    assert tombstone_in(timeline.state, T0, RETENTION, TOMBSTONE) is None  # open: none
    assert tombstone_after(None, TOMBSTONE) is None  # the commit's way to the same answer


def test_a_cancelled_order_expires_retention_after_its_last_activity() -> None:
    timeline = Timeline("o-cancel")
    timeline.send(f.order_placed("o-cancel", T0), f.paid("o-cancel", T0))
    timeline.send(f.cancel_requested("o-cancel", T0 + hours(0.5)))  # free window: at once
    assert timeline.state.cancellation is not None and not timeline.state.deadlines
    now = T0 + hours(2)
    assert retention_start(timeline.state, now) == now
    assert expires_in(timeline.state, now, RETENTION) == RETENTION
    # The tombstone outlives the keys by its own retention, to the second.
    assert tombstone_in(timeline.state, now, RETENTION, TOMBSTONE) == RETENTION + TOMBSTONE
    assert tombstone_after(RETENTION, TOMBSTONE) == RETENTION + TOMBSTONE
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
    # When the keys are gone, the tombstone is still there: refused, never a new order.
    keys_for = expires_in(state, now, RETENTION)
    assert tombstone_in(state, now, RETENTION, TOMBSTONE) == keys_for + TOMBSTONE  # type: ignore[operator]
    assert tombstone_after(keys_for, TOMBSTONE) == tombstone_in(state, now, RETENTION, TOMBSTONE)
    assert is_expired(None, tombstone=True)


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
    monkeypatch.delenv("AFTERSALES_RETENTION")
    assert Settings.from_env().tombstone_retention == days(180)
    monkeypatch.setenv("AFTERSALES_TOMBSTONE_RETENTION", "P1Y")
    with pytest.raises(SettingsError, match="AFTERSALES_TOMBSTONE_RETENTION"):
        Settings.from_env()
    monkeypatch.setenv("AFTERSALES_TOMBSTONE_RETENTION", "P400D")
    assert Settings.from_env().tombstone_retention == days(400)
