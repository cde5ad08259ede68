"""Contract 1.1 rules end to end through a real worker: cash on delivery, units not SKUs,
self-arranged postage, platform cancellation and currencies.

Given (facts sent), When (the action), Then (events on a queue bound to `#`, or dead
letters). Event times lie in the past; the worker computes everything from them. Where a
rule depends on which fact is known first, the test waits for that fact to be applied.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    PLATFORM_ACTION,
    SELLER_ACTION,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.state import wait_applied

pytestmark = pytest.mark.integration

ORDER_TOTAL = Decimal("50.49")  # placed(): 2 x 10.00 + 25.50 + 4.99 shipping


def shipped_order(
    wire_client, redis_client, shipped_at: datetime, delivered_at=None, **placed_fields
) -> str:
    """Placed, paid (unless cod), shipped and perhaps delivered: all applied on return."""
    order = new_id("o")
    start = shipped_at - timedelta(days=1)
    facts = [placed(order, start, **placed_fields)]
    if placed_fields.get("payment_method") != "cod":
        facts.append(message("order.paid", order, start + timedelta(minutes=5)))
    facts.append(message("order.shipped", order, shipped_at, tracking_number="TRK-77"))
    if delivered_at is not None:
        facts.append(message("order.delivered", order, delivered_at))
    for fact in facts:
        wire_client.send(ORDER_EVENT, fact)
    wait_applied(redis_client, order, len(facts))
    return order


def return_request(order: str, at: datetime, **fields) -> dict:
    body = {"request_id": new_id("r"), "kind": "refund_only", "reason": "damaged", **fields}
    return message("buyer.return_requested", order, at, **body)


def for_request(event_type: str, request_id: str):
    def matches(event: dict) -> bool:
        return event["type"] == event_type and event["data"].get("request_id") == request_id

    matches.__name__ = f"{event_type} of {request_id}"
    return matches


def test_a_cash_on_delivery_order_is_refunded_what_the_courier_collected(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=3), ago(days=2), payment_method="cod")
    request = return_request(order, ago(days=1))
    wire_client.send(BUYER_ACTION, request)
    event_listener.wait_for("return.requested")

    wire_client.send(
        SELLER_ACTION,
        message("seller.return_approved", order, ago(hours=5), request_id=request["request_id"]),
    )
    (refund,) = event_listener.wait_for("refund.initiated")
    # A storefront that sends order.paid anyway pays nothing a second time.
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(hours=1)))
    wait_applied(redis_client, order, 6)

    assert refund["data"]["amount"] == str(ORDER_TOTAL)
    assert refund["data"]["breakdown"] == {
        "items": "45.50",
        "shipping_fee": "4.99",
        "return_shipping_deduction": "0.00",
        "return_shipping_refund": "0.00",
    }
    event_listener.assert_none(
        lambda e: e["type"] in ("refund.initiated", "action.rejected") and e["id"] != refund["id"],
        within=1.0,
    )


def test_a_finally_refused_unit_leaves_the_other_unit_returnable(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=11), ago(days=10))
    one_unit = [{"sku": "SKU-1", "quantity": 1}]
    first = return_request(order, ago(days=9), reason="changed_mind", items=one_unit)
    wire_client.send(BUYER_ACTION, first)
    wire_client.send(
        SELLER_ACTION,
        message(
            "seller.return_rejected",
            order,
            ago(days=8),
            request_id=first["request_id"],
            reason="used",
        ),
    )
    wait_applied(redis_client, order, 6)  # the request and its rejection
    # Neither resubmitted nor appealed within 48 h: the unit is finally refused (the timer
    # fires before the next message, which happened after it).
    other = return_request(order, ago(minutes=10), reason="changed_mind", items=one_unit)
    wire_client.send(BUYER_ACTION, other)
    (requested,) = event_listener.wait_for(for_request("return.requested", other["request_id"]))
    both = return_request(
        order, ago(minutes=5), reason="changed_mind", items=[{"sku": "SKU-1", "quantity": 2}]
    )
    wire_client.send(BUYER_ACTION, both)

    (refused,) = event_listener.wait_for("action.rejected")
    (closed,) = event_listener.wait_for(for_request("return.closed", first["request_id"]))
    assert closed["data"]["reason"] == "rejected_final"
    assert requested["data"]["kind"] == "refund_only"
    assert (refused["data"]["message_id"], refused["data"]["code"]) == (
        both["message_id"],
        "return_refused",
    )


def test_a_seller_fault_self_arranged_return_pays_back_the_postage_up_to_the_cap(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(
        wire_client, redis_client, ago(days=4), ago(days=3), marketplace="UK", currency="GBP"
    )
    request = return_request(
        order, ago(hours=40), kind="return_and_refund", method="self_arrange", reason="defective"
    )
    rid = request["request_id"]
    wire_client.send(BUYER_ACTION, request)
    wire_client.send(
        SELLER_ACTION, message("seller.return_approved", order, ago(hours=30), request_id=rid)
    )
    event_listener.wait_for("return.approved")

    wire_client.send(
        BUYER_ACTION,
        message(
            "buyer.return_tracking_submitted",
            order,
            ago(hours=20),
            request_id=rid,
            carrier="Royal Mail",
            tracking_number="RM-1",
            postage="8.50",
        ),
    )
    wait_applied(redis_client, order, 7)  # the receipt must find the postage recorded
    wire_client.send(
        SELLER_ACTION, message("seller.return_received", order, ago(hours=1), request_id=rid)
    )

    (refund,) = event_listener.wait_for("refund.initiated")
    assert refund["data"]["breakdown"] == {
        "items": "45.50",
        "shipping_fee": "4.99",
        "return_shipping_deduction": "0.00",
        "return_shipping_refund": "6.99",
    }  # 8.50 capped at the UK's 6.99
    assert Decimal(refund["data"]["amount"]) == ORDER_TOTAL + Decimal("6.99")
    assert refund["data"]["currency"] == "GBP"


def test_the_platform_cancels_a_shipped_order_and_names_the_parcel_to_stop(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(hours=6))
    request = return_request(order, ago(hours=5), reason="not_received")
    wire_client.send(BUYER_ACTION, request)
    event_listener.wait_for("return.requested")

    cancel = message("platform.order_cancelled", order, ago(hours=1), reason="lost parcel")
    wire_client.send(PLATFORM_ACTION, cancel)
    (cancelled,) = event_listener.wait_for("order.cancelled")
    (refund,) = event_listener.wait_for("refund.initiated")
    (closed,) = event_listener.wait_for("return.closed")
    # The parcel turns up anyway: it is refused so the shipment can be stopped.
    late = message("order.delivered", order, ago(minutes=5))
    wire_client.send(ORDER_EVENT, late)

    (rejected,) = event_listener.wait_for("action.rejected")
    assert cancelled["data"] == {
        "by": "platform",
        "reason": "lost parcel",
        "seller_fault": False,
        "refund": {"amount": str(ORDER_TOTAL), "currency": "USD"},
        "stop_shipment": {"tracking_number": "TRK-77"},
    }
    assert (refund["data"]["request_id"], refund["data"]["amount"]) == (None, str(ORDER_TOTAL))
    assert closed["data"] == {"request_id": request["request_id"], "reason": "order_cancelled"}
    assert (rejected["data"]["message_id"], rejected["data"]["code"]) == (
        late["message_id"],
        "order_cancelled",
    )
    event_listener.assert_none("return.auto_approved", within=1.0)


def test_the_platform_cannot_cancel_a_delivered_order(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = shipped_order(wire_client, redis_client, ago(days=2), ago(days=1))
    cancel = message("platform.order_cancelled", order, ago(hours=1), reason="fraud")
    wire_client.send(PLATFORM_ACTION, cancel)

    (rejected,) = event_listener.wait_for("action.rejected")
    assert (rejected["data"]["message_id"], rejected["data"]["code"]) == (
        cancel["message_id"],
        "already_delivered",
    )
    event_listener.assert_none("order.cancelled", within=0.5)


def test_an_order_in_another_currency_than_its_marketplace_is_dead_lettered(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = new_id("o")
    body = placed(order, ago(hours=1), marketplace="UK", currency="JPY")
    wire_client.send(ORDER_EVENT, body)

    (letter,) = event_listener.dead_letters(
        match=lambda letter: letter["original"].get("order_id") == order
    )
    assert letter["reason"] == "invalid_message"
    assert letter["task"] == ORDER_EVENT
    assert "UK takes orders in GBP only" in letter["error"]
    assert letter["original"]["message_id"] == body["message_id"]
