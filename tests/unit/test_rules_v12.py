"""Contract 1.2 rules at their edges (issue 20): cash collected for a cancelled order,
rejections counted per unit, reshipment and exchange requests, the seller's offer."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests import factories as f
from tests.factories import T0, days, hours
from tests.unit.harness import Timeline
from tests.unit.orders_v11 import SECOND, SHIPPED

# --- 1.2 a: a cancelled cash-on-delivery parcel delivered anyway -----------------------


def cancelled_after_shipping(payment_method: str) -> tuple[Timeline, str]:
    """Shipped, then cancelled by customer service (the parcel is to be stopped)."""
    msg = f.order_placed(payment_method=payment_method)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg)
    if payment_method == "prepaid":
        timeline.send(f.paid(oid, T0 + hours(1)))
    timeline.send(f.shipped(oid, SHIPPED, tracking_number="TRK-1"))
    cancel = f.message("platform.order_cancelled", oid, SHIPPED + hours(1), reason="fraud")
    timeline.send(cancel)
    return timeline, oid


@pytest.mark.parametrize(
    ("payment_method", "refunds", "codes"),
    [("cod", ["54.99"], []), ("prepaid", ["54.99"], ["order_cancelled"])],
    ids=["cod: the collected cash goes back", "prepaid: refunded at the cancellation"],
)
def test_delivery_of_a_cancelled_order(
    payment_method: str, refunds: list[str], codes: list[str]
) -> None:
    timeline, oid = cancelled_after_shipping(payment_method)
    cancelled = timeline.one("order.cancelled")
    assert (cancelled.refund is None) is (payment_method == "cod")
    assert cancelled.stop_shipment is not None
    timeline.send(f.delivered(oid, SHIPPED + days(2)))
    assert timeline.refunded() == refunds
    assert timeline.codes() == codes


def test_cod_cash_collected_after_a_cancellation_is_refunded_like_a_late_payment() -> None:
    timeline, oid = cancelled_after_shipping("cod")
    timeline.send(f.delivered(oid, SHIPPED + days(2)))
    refund = timeline.one("refund.initiated")
    assert refund.request_id is None
    assert (str(refund.breakdown.items), str(refund.breakdown.shipping_fee)) == ("50.00", "4.99")
    assert str(refund.amount) == "54.99"
    assert timeline.state.cancellation is not None
    assert str(timeline.state.cancellation.refund) == "54.99"
    # The courier cannot collect twice: a second delivery fact refunds nothing more.
    timeline.send(f.delivered(oid, SHIPPED + days(3)))
    assert timeline.refunded() == ["54.99"] and timeline.codes() == []
    # And a return request of the cancelled order is still refused.
    timeline.send(f.return_requested(oid, SHIPPED + days(3) + SECOND, kind="refund_only"))
    assert timeline.codes() == ["order_cancelled"]


@pytest.mark.parametrize(
    "delivered_at",
    [SHIPPED + hours(1) - SECOND, SHIPPED + hours(1) + SECOND],
    ids=["delivered a second before the cancellation", "a second after"],
)
def test_cod_delivery_at_the_cancellation_edge(delivered_at: datetime) -> None:
    """Whichever side of the published cancellation the delivery happened, the
    cancellation stands (a published outcome is never undone) and the cash goes back."""
    msg = f.order_placed(payment_method="cod")
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.shipped(oid, SHIPPED))
    cancel = f.message("platform.order_cancelled", oid, SHIPPED + hours(1), reason="fraud")
    timeline.send(cancel)
    timeline.send(f.delivered(oid, delivered_at))
    refunds = timeline.of("refund.initiated")
    assert [str(r.amount) for r in refunds] == ["54.99"]
    assert all(r.request_id is None for r in refunds)


def test_a_cod_order_that_never_shipped_is_refunded_what_the_courier_collected() -> None:
    """The shipment was refused (`order_cancelled`) yet the parcel went and was paid for."""
    msg = f.order_placed(payment_method="cod")
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.seller_cancelled(oid, T0 + hours(2)))
    timeline.send(f.shipped(oid, T0 + hours(3)), f.delivered(oid, T0 + days(2)))
    assert timeline.codes() == ["order_cancelled"]  # the shipment: stop it
    assert timeline.refunded() == ["54.99"]
