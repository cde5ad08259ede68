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


# --- 1.2 b: rejections counted per unit ----------------------------------------------

A2, B1, A1 = (
    [{"sku": "A", "quantity": 2}],
    [{"sku": "B", "quantity": 1}],
    [{"sku": "A", "quantity": 1}],
)
DELIVERED = T0 + days(3)


def two_sku_order() -> tuple[Timeline, str]:
    """A x2 at 10.00 and B x1 at 25.50, delivered."""
    msg = f.order_placed(items=[f.item("A", 2, "10.00"), f.item("B", 1, "25.50")])
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, DELIVERED))
    return timeline, oid


def ask_and_reject(
    timeline: Timeline, at: datetime, items: list[dict[str, object]], rid: str
) -> None:
    oid = timeline.order_id
    timeline.send(
        f.return_requested(oid, at, request_id=rid, kind="refund_only", reason="changed_mind",
                           items=items),
        f.return_rejected(oid, rid, at + hours(1)),
    )  # fmt: skip


def the_issues_scenario() -> tuple[Timeline, str]:
    """A x2 rejected; resubmitted as A x2 + B x1 (B never asked before), rejected too."""
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), A2, "r1")
    ask_and_reject(timeline, DELIVERED + hours(3), [*A2, *B1], "r2")
    return timeline, oid


def test_the_issues_scenario_b_rejected_once_may_be_asked_again() -> None:
    timeline, oid = the_issues_scenario()
    assert [e.can_resubmit for e in timeline.of("return.rejected")] == [True, True]
    second = timeline.state.returns["r2"]
    assert (second.attempt, second.previous_request_id) == (2, "r1")
    assert second.second_tries == tuple(f.message("buyer.return_requested", oid,
        request_id="x", kind="refund_only", reason="damaged", items=A2).items)  # fmt: skip
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(5), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == []
    # B's request took B over; A's two units (rejected twice) stay with r2: appeal only.
    assert timeline.state.returns["r2"].status == "rejected"
    assert [(s.sku, s.quantity) for s in timeline.state.returns["r2"].items] == [("A", 2)]
    assert timeline.state.returns["r3"].attempt == 2
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(6), request_id="r4", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_used"]
    # r3 rejected: B now rejected twice, nothing left to resubmit.
    timeline.send(f.return_rejected(oid, "r3", DELIVERED + hours(7)))
    assert timeline.of("return.rejected")[-1].can_resubmit is False
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(8), request_id="r5", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_used", "resubmission_used"]


@pytest.mark.parametrize(
    ("after_rejection", "codes"),
    [(hours(48) - SECOND, []), (hours(48), ["return_refused"])],
    ids=["a second inside the resubmit window", "at its end: B finally refused"],
)
def test_a_unit_rejected_once_is_asked_again_within_its_requests_resubmit_window(
    after_rejection: object, codes: list[str]
) -> None:
    timeline, oid = the_issues_scenario()
    rejected_at = DELIVERED + hours(4)
    timeline.send(
        f.return_requested(oid, rejected_at + after_rejection, request_id="r3",  # type: ignore[operator]
                           kind="refund_only", reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == codes


def test_a_resubmission_after_the_return_window_may_ask_for_units_rejected_once_only() -> None:
    timeline, oid = two_sku_order()
    end = DELIVERED + days(30)  # UK return window (no clock change in March 5 - April 4)
    ask_and_reject(timeline, end - hours(2), A1, "r1")  # rejected at end - 1 h
    timeline.send(
        f.return_requested(oid, end + hours(1), request_id="r2", kind="refund_only",
                           reason="changed_mind", items=[*A1, *B1]),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_adds_items"]
    timeline.send(
        f.return_requested(oid, end + hours(1), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_adds_items"]
    assert timeline.state.returns["r3"].attempt == 2


def test_units_rejected_once_in_two_requests_are_asked_again_together() -> None:
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), A1, "r1")
    ask_and_reject(timeline, DELIVERED + hours(3), B1, "r2")
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(5), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=[*A1, *B1]),
    )  # fmt: skip
    # A x1 is free (never asked): a new unit; the B unit is r2's, asked again.
    assert timeline.codes() == []
    returns = timeline.state.returns
    assert (returns["r1"].status, returns["r2"].status) == ("rejected", "superseded")
    assert [(s.sku, s.quantity) for s in returns["r3"].second_tries or ()] == [("B", 1)]
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(6), request_id="r4", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    # r1's A unit, asked again: r1 is superseded and r4 waits for the seller.
    assert timeline.codes() == [] and returns["r1"].status == "rejected"
    assert timeline.state.returns["r1"].status == "superseded"


def test_units_left_in_a_rejected_request_close_rejected_final_or_can_be_appealed() -> None:
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), [*A2, *B1], "r1")
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(3), request_id="r2", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert [(s.sku, s.quantity) for s in timeline.state.returns["r1"].items] == [("A", 2)]
    timeline.send(f.appeal_submitted(oid, "r1", DELIVERED + hours(4)))
    timeline.send(f.arbitration_decided(oid, "r1", "refund", DELIVERED + hours(5)))
    refund = timeline.one("refund.initiated")
    assert (refund.request_id, str(refund.amount)) == ("r1", "20.00")  # the A units only
