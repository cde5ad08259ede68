"""End to end through a real worker: cash collected for a cancelled order, rejections
counted per unit, reshipment requests and the seller's offer (the retention of live
orders: test_retention.py).

Given (facts sent), When (the action), Then (events on a queue bound to `#`, or dead
letters). Event times lie in the past; the worker computes everything from them.
"""

from __future__ import annotations

import pytest

from tests.integration.test_cod_units_and_postage import for_request, return_request, shipped_order
from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    PLATFORM_ACTION,
    SELLER_ACTION,
    ago,
    message,
)
from tests.support.state import wait_applied

pytestmark = pytest.mark.integration


def test_cash_collected_for_a_cancelled_cod_order_goes_back(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=3), payment_method="cod")
    wire_client.send(
        PLATFORM_ACTION, message("platform.order_cancelled", order, ago(days=2), reason="fraud")
    )
    (cancelled,) = event_listener.wait_for("order.cancelled")
    assert cancelled["data"]["refund"] is None  # nothing was paid yet
    assert cancelled["data"]["stop_shipment"] == {"tracking_number": "TRK-77"}
    # The courier delivered anyway and collected the cash.
    wire_client.send(ORDER_EVENT, message("order.delivered", order, ago(days=1)))
    (refund,) = event_listener.wait_for("refund.initiated")
    assert refund["subject"] == order
    assert refund["data"]["request_id"] is None
    assert refund["data"]["amount"] == "50.49"
    assert refund["data"]["breakdown"] == {
        "items": "45.50",
        "shipping_fee": "4.99",
        "return_shipping_deduction": "0.00",
        "return_shipping_refund": "0.00",
    }
    event_listener.assert_none(lambda e: e["type"] == "action.rejected", within=1.0)


def test_rejections_are_counted_per_unit(start_worker, wire_client, event_listener, redis_client):
    """The issue's order: A x2 rejected; A x2 + B x1 rejected; B alone is then B's
    resubmission (rejected once), not `resubmission_used`; A alone is."""
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=5), ago(days=4))
    a2, b1 = {"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}
    sent = 4  # placed, paid, shipped, delivered
    for items, hours_ago in (([a2], 30), ([a2, b1], 20)):
        request = return_request(order, ago(hours=hours_ago), reason="changed_mind", items=items)
        rid = request["request_id"]
        wire_client.send(BUYER_ACTION, request)
        rejected = message(
            "seller.return_rejected", order, ago(hours=hours_ago - 1), request_id=rid, reason="used"
        )
        wire_client.send(SELLER_ACTION, rejected)
        sent += 2
        wait_applied(redis_client, order, sent)
    b_again = return_request(order, ago(hours=2), reason="changed_mind", items=[b1])
    wire_client.send(BUYER_ACTION, b_again)
    event_listener.wait_for(for_request("return.requested", b_again["request_id"]))
    a_again = return_request(order, ago(hours=1), reason="changed_mind", items=[a2])
    wire_client.send(BUYER_ACTION, a_again)
    (refused,) = event_listener.wait_for("action.rejected")
    assert refused["data"]["message_id"] == a_again["message_id"]
    assert refused["data"]["code"] == "resubmission_used"
    rejections = event_listener.wait_for("return.rejected", count=2)
    assert [e["data"]["can_resubmit"] for e in rejections] == [True, True]


def test_a_partial_refund_offer_accepted_through_the_wire(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=5), ago(days=4))
    request = return_request(order, ago(hours=6), kind="return_and_refund", method="self_arrange")
    rid = request["request_id"]
    wire_client.send(BUYER_ACTION, request)
    offer = message(
        "seller.offer_made", order, ago(hours=5), request_id=rid, offer="partial_refund",
        amount="12.5",
    )  # fmt: skip
    wire_client.send(SELLER_ACTION, offer)
    (made,) = event_listener.wait_for(for_request("offer.made", rid))
    assert made["data"]["amount"] == {"amount": "12.50", "currency": "USD"}
    wire_client.send(
        BUYER_ACTION, message("buyer.offer_accepted", order, ago(hours=4), request_id=rid)
    )
    (refund,) = event_listener.wait_for(for_request("refund.initiated", rid))
    (closed,) = event_listener.wait_for(for_request("return.closed", rid))
    assert refund["data"]["amount"] == "12.50" and closed["data"]["reason"] == "offer_accepted"
    event_listener.assert_none(lambda e: e["type"] == "action.rejected", within=1.0)


def test_a_reshipment_is_sent_again_through_the_wire(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=5), ago(days=4))
    request = return_request(order, ago(hours=6), kind="reshipment", reason="missing_items")
    rid = request["request_id"]
    wire_client.send(BUYER_ACTION, request)
    wire_client.send(
        SELLER_ACTION, message("seller.return_approved", order, ago(hours=5), request_id=rid)
    )
    shipped = message(
        "seller.replacement_shipped", order, ago(hours=4), request_id=rid, tracking_number="RS-9"
    )
    wire_client.send(SELLER_ACTION, shipped)
    (event,) = event_listener.wait_for(for_request("replacement.shipped", rid))
    assert event["data"] == {
        "request_id": rid, "kind": "reshipment", "carrier": None, "tracking_number": "RS-9",
    }  # fmt: skip
    event_listener.assert_none(
        lambda e: e["type"] in ("refund.initiated", "action.rejected"), within=1.0
    )
