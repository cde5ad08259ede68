"""Contract 1.2 end to end through a real worker (issue 20): cash collected for a
cancelled order, rejections counted per unit, retention that never refuses a live order,
reshipment and exchange requests and the seller's offer.

Given (facts sent), When (the action), Then (events on a queue bound to `#`, or dead
letters). Event times lie in the past; the worker computes everything from them.
"""

from __future__ import annotations

import pytest

from tests.integration.test_rules_v11 import shipped_order
from tests.integration.wire_messages import ORDER_EVENT, PLATFORM_ACTION, ago, message

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
