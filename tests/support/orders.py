"""Orders for the rules' table tests (test_cod_units_and_postage.py, test_money_and_time.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schemas.policy import PolicySet
from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline

SECOND = timedelta(seconds=1)
SHIPPED = T0 + hours(5)
DELIVERED = T0 + days(3)


def delivered_order(
    policy: PolicySet | None = None, delivered: bool = True, **overrides: Any
) -> tuple[Timeline, str]:
    msg = f.order_placed(**overrides)
    oid = msg.order_id
    timeline = Timeline(oid, policy) if policy else Timeline(oid)
    timeline.send(msg)
    if msg.payment_method == "prepaid":
        timeline.send(f.paid(oid, T0 + hours(1)))
    timeline.send(f.shipped(oid, SHIPPED))
    if delivered:
        timeline.send(f.delivered(oid, DELIVERED))
    return timeline, oid


def ask(timeline: Timeline, at: datetime, **overrides: Any) -> str:
    msg = f.return_requested(timeline.order_id, at, **overrides)
    timeline.send(msg)
    return str(msg.request_id)


def breakdown_adds_up(refund: Any) -> None:
    parts = refund.breakdown
    assert refund.amount == (
        parts.items
        + parts.shipping_fee
        - parts.return_shipping_deduction
        + parts.return_shipping_refund
    )
