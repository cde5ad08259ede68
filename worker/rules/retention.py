"""Retention: when an order's keys may start to expire, and which late message can only
belong to an order that expired (docs/rules.md, retention).

Pure functions of the state, the message's event time, `now` and the retention, like the
hold of a parked message: the service passes `AFTERSALES_RETENTION` in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.rules.state import OrderState

DEFAULT_RETENTION = timedelta(days=60)
"""How long a closed order is kept (`AFTERSALES_RETENTION`): twice the longest built-in
return window (UK, 30 days), so a late message or a support look-up still finds it."""

_OPEN_RETURN = frozenset({"requested", "approved", "rejected", "appealed"})
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


def is_expired(
    state: OrderState | None, occurred_at: datetime, now: datetime, retention: timedelta
) -> bool:
    """A message for an order without order facts (no state at all, or only held
    messages) that happened at least `retention` ago: it is refused, never the start of a
    new order. An expired order's `order.placed` (the only message that creates an order)
    is always such a message, so an expired order is never placed, paid or refunded
    again. A message that happened after the order closed finds no order, as any message
    ahead of its `order.placed` does (held, then dead-lettered)."""
    unknown = state is None or state.order is None
    return unknown and now - occurred_at >= retention


def _open_request(state: OrderState) -> bool:
    request = state.cancel_request
    if request is not None and request.status == "open":
        return True
    return any(r.status in _OPEN_RETURN for r in state.returns.values())
