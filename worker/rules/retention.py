"""Retention: when an order's keys may start to expire, how long the tombstone of an
expired order outlives them, and which message is for an order known to have expired
(docs/rules.md, retention).

Pure functions of the state, `now`, the retention and whether the order's tombstone is
there, like the hold of a parked message: the service passes `AFTERSALES_RETENTION` and
`AFTERSALES_TOMBSTONE_RETENTION` in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.rules.state import OrderState

DEFAULT_RETENTION = timedelta(days=60)
"""How long a closed order is kept (`AFTERSALES_RETENTION`): twice the longest built-in
return window (UK, 30 days), so a late message or a support look-up still finds it."""

DEFAULT_TOMBSTONE_RETENTION = timedelta(days=180)
"""How long an expired order's tombstone outlives its keys (`AFTERSALES_TOMBSTONE_RETENTION`):
180 days, so a message replayed or redelivered up to eight months after the order closed
(a dead-letter replay, a producer's outbox, a marketplace re-sending its history) is
refused `order_expired` rather than starting the order again. About 134 bytes an order
(docs/operations.md#retention)."""

_OPEN_RETURN = frozenset({"requested", "approved", "rejected", "appealed", "offered", "replacing"})
"""Return statuses still waiting for someone (an appeal has no deadline of its own)."""


def retention_start(state: OrderState, now: datetime) -> datetime | None:
    """When the retention of a closed order starts, or None while it is open: a request
    still open, a deadline pending or a message parked.

    It starts at the last activity (`now`), but never before the order was placed (an
    `occurred_at` may be a little ahead of the clock), nor before a delivered order's
    return window ends (it is still an opening for a new request)."""
    if state.deadlines or state.parked or _open_request(state):
        return None
    start = now
    if state.order is not None:
        start = max(start, state.order.placed_at)
    if state.delivered_at is not None and state.policy is not None:
        start = max(start, state.policy.end(state.policy.return_window, state.delivered_at))
    return start


def expires_in(state: OrderState, now: datetime, retention: timedelta) -> timedelta | None:
    """How long the order's keys live after this commit (None: they persist): until
    `retention` after its start, so once they are gone the order's `order.placed` is at
    least `retention` old, which `is_expired` recognises."""
    start = retention_start(state, now)
    if start is None:
        return None
    return start - now + retention


def tombstone_in(
    state: OrderState, now: datetime, retention: timedelta, tombstone: timedelta
) -> timedelta | None:
    """How long the order's tombstone lives after this commit (None: the order is open and
    has none): until `tombstone` after its keys expire."""
    return tombstone_after(expires_in(state, now, retention), tombstone)


def tombstone_after(keys: timedelta | None, tombstone: timedelta) -> timedelta | None:
    """`tombstone_in` from the keys' TTL (`expires_in`'s answer) when it is known already:
    the commit needs both and works each out once."""
    return None if keys is None else keys + tombstone


def is_expired(state: OrderState | None, tombstone: bool) -> bool:
    """1.2: a message for an order known to have closed and expired: its keys are gone
    (no state, or only held messages and no order facts) and its tombstone is there. It
    is refused, never the start of a new order. An order never seen before (no tombstone)
    is a new order, however old its messages' `occurred_at`: a marketplace onboarding its
    open orders, or a cross-border parcel, sends facts of live orders months old."""
    unknown = state is None or state.order is None
    return unknown and tombstone


def _open_request(state: OrderState) -> bool:
    request = state.cancel_request
    if request is not None and request.status == "open":
        return True
    return any(r.status in _OPEN_RETURN for r in state.returns.values())
