"""Immediate outcomes of the rules, end to end through a real worker (docs/rules.md).

Each test is Given (facts sent), When (the action), Then (the events on a queue bound to
`#`). Event times lie in the past; the worker computes everything from them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    ORDER_TOTAL,
    PLATFORM_ACTION,
    SELLER_ACTION,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.state import paid_order, wait_applied

pytestmark = pytest.mark.integration


def delivered_order(wire_client, delivered_at: datetime, **placed_fields) -> str:
    order = new_id("o")
    start = delivered_at - timedelta(days=3)
    wire_client.send(ORDER_EVENT, placed(order, start, **placed_fields))
    wire_client.send(ORDER_EVENT, message("order.paid", order, start + timedelta(minutes=5)))
    wire_client.send(ORDER_EVENT, message("order.ready_to_ship", order, start + timedelta(hours=5)))
    wire_client.send(
        ORDER_EVENT,
        message("order.shipped", order, start + timedelta(days=1), tracking_number="TRK1"),
    )
    wire_client.send(ORDER_EVENT, message("order.delivered", order, delivered_at))
    return order


def return_request(order: str, at: datetime, **fields) -> dict:
    body = {"request_id": new_id("r"), "kind": "refund_only", "reason": "changed_mind", **fields}
    return message("buyer.return_requested", order, at, **body)


@pytest.mark.cluster
def test_a_late_cancellation_goes_to_the_seller_who_accepts_it(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = paid_order(wire_client, redis_client, ago(hours=5), ago(hours=4))
    asked_at = ago(hours=1)  # three hours after payment: outside the free hour

    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, asked_at, reason="too slow")
    )
    (requested,) = event_listener.wait_for("cancellation.requested")
    wire_client.send(SELLER_ACTION, message("seller.cancel_accepted", order, ago(minutes=5)))

    (accepted,) = event_listener.wait_for("cancellation.accepted")
    (cancelled,) = event_listener.wait_for("order.cancelled")
    (refund,) = event_listener.wait_for("refund.initiated")
    respond_by = datetime.fromisoformat(requested["data"]["respond_by"])
    assert respond_by - asked_at == timedelta(hours=48)
    assert accepted["data"] == {"by": "seller"}
    assert cancelled["data"]["by"] == "buyer" and cancelled["data"]["seller_fault"] is False
    assert Decimal(refund["data"]["amount"]) == ORDER_TOTAL


def test_an_open_cancellation_request_is_rejected_by_the_system_when_the_order_ships(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = paid_order(wire_client, redis_client, ago(hours=5), ago(hours=4))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(hours=2), reason="too slow")
    )
    event_listener.wait_for("cancellation.requested")

    wire_client.send(ORDER_EVENT, message("order.ready_to_ship", order, ago(hours=1)))
    wire_client.send(ORDER_EVENT, message("order.shipped", order, ago(minutes=30)))

    (rejected,) = event_listener.wait_for("cancellation.rejected")
    assert rejected["data"]["by"] == "system"
    event_listener.assert_none("order.cancelled", within=1.0)


def test_facts_arriving_after_a_cancellation_are_answered_consistently(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(hours=2)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(hours=1), reason="mistake")
    )
    event_listener.wait_for("order.cancelled")

    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(minutes=50)))
    ready = message("order.ready_to_ship", order, ago(minutes=40))
    wire_client.send(ORDER_EVENT, ready)

    (refund,) = event_listener.wait_for("refund.initiated")
    (rejected,) = event_listener.wait_for("action.rejected")
    assert Decimal(refund["data"]["amount"]) == ORDER_TOTAL  # the late payment comes back
    assert rejected["data"]["code"] == "order_cancelled"
    assert rejected["data"]["message_id"] == ready["message_id"]


def test_a_payment_that_arrives_before_its_order_is_held_then_applied(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(minutes=20)))
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30)))

    # Paid 20 minutes ago: a cancellation now is inside the free hour and refunds in full.
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="mistake")
    )
    (cancelled,) = event_listener.wait_for("order.cancelled")
    assert cancelled["data"]["refund"] == {"amount": str(ORDER_TOTAL), "currency": "USD"}


def test_a_refund_only_request_approved_by_the_seller_refunds_at_once(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = delivered_order(wire_client, ago(days=2))
    request = return_request(
        order, ago(days=1), reason="damaged", items=[{"sku": "SKU-2", "quantity": 1}]
    )
    wire_client.send(BUYER_ACTION, request)
    (requested,) = event_listener.wait_for("return.requested")

    rid = request["request_id"]
    wire_client.send(
        SELLER_ACTION, message("seller.return_approved", order, ago(hours=2), request_id=rid)
    )

    (approved,) = event_listener.wait_for("return.approved")
    (refund,) = event_listener.wait_for("refund.initiated")
    assert requested["data"]["kind"] == "refund_only" and requested["data"]["request_id"] == rid
    assert approved["data"] == {"request_id": rid, "by": "seller"}
    # One of the items only: its price, no shipping fee, nothing deducted.
    assert refund["data"]["request_id"] == rid
    assert refund["data"]["amount"] == "25.50"
    assert refund["data"]["breakdown"] == {
        "items": "25.50",
        "shipping_fee": "0.00",
        "return_shipping_deduction": "0.00",
        "return_shipping_refund": "0.00",
    }


@pytest.mark.cluster
def test_a_rejected_request_can_be_appealed_and_arbitration_refunds_it(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = delivered_order(wire_client, ago(days=3))
    request = return_request(order, ago(days=2), reason="not_as_described")
    rid = request["request_id"]
    wire_client.send(BUYER_ACTION, request)
    wire_client.send(
        SELLER_ACTION,
        message("seller.return_rejected", order, ago(days=1), request_id=rid, reason="looks fine"),
    )
    (rejected,) = event_listener.wait_for("return.rejected")

    wire_client.send(
        BUYER_ACTION,
        message(
            "buyer.appeal_submitted", order, ago(hours=5), request_id=rid, note="photos attached"
        ),
    )
    wire_client.send(
        PLATFORM_ACTION,
        message(
            "platform.arbitration_decided", order, ago(hours=1), request_id=rid, outcome="refund"
        ),
    )

    (approved,) = event_listener.wait_for("return.approved")
    (refund,) = event_listener.wait_for("refund.initiated")
    assert rejected["data"]["can_resubmit"] is True and rejected["data"]["can_appeal"] is True
    assert approved["data"]["by"] == "platform"
    assert Decimal(refund["data"]["amount"]) == ORDER_TOTAL  # every item: shipping fee too


@pytest.mark.parametrize(
    ("delivered_days_ago", "expected"),
    [(13, "return.requested"), (15, "action.rejected")],
    ids=["inside-14-days", "after-14-days"],
)
def test_the_return_window_counts_from_delivery(
    start_worker, wire_client, event_listener, redis_client, delivered_days_ago, expected
):
    start_worker()
    order = delivered_order(wire_client, ago(days=delivered_days_ago))
    # The delivery first: a return request taken before it is one of an order in transit
    # (refund only, no window), and stays accepted when the delivery comes after it.
    wait_applied(redis_client, order, 5)
    wire_client.send(BUYER_ACTION, return_request(order, ago(minutes=1)))
    (event,) = event_listener.wait_for({"return.requested", "action.rejected"})
    assert event["type"] == expected
    if expected == "action.rejected":
        assert event["data"]["code"] == "outside_return_window"


def test_a_drop_off_too_heavy_for_the_carrier_is_refused(start_worker, wire_client, event_listener):
    start_worker()
    order = delivered_order(wire_client, ago(days=2), marketplace="UK", currency="GBP")
    request = return_request(
        order,
        ago(hours=1),
        kind="return_and_refund",
        method="drop_off",
        parcel={"weight_kg": "15.01", "dimensions_cm": [40, 30, 20]},
    )
    wire_client.send(BUYER_ACTION, request)

    (rejected,) = event_listener.wait_for("action.rejected")
    assert rejected["data"]["code"] == "drop_off_ineligible"
    assert rejected["data"]["message_id"] == request["message_id"]
    event_listener.assert_none("return.requested", within=0.5)
