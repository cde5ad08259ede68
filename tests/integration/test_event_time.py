"""Event time all the way (docs/design.md), end to end through a real worker: both arrival
orders of the same facts give the same outcomes.

A test that sends two facts in a given arrival order waits until the first is committed
(`wait_applied`) before it sends the second, so the order is the one it names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    SELLER_ACTION,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.state import paid_order, wait_applied
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration

ORDER_TOTAL = Decimal("50.49")  # placed(): 2 x 10.00 + 25.50 + 4.99 shipping
SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}


def send_in_order(wire_client, redis_client, order: str, version: int, sends) -> None:
    """Send each (task, message), waiting until the order has committed it."""
    for task, body in sends:
        wire_client.send(task, body)
        version += 1
        wait_applied(redis_client, order, version)


@pytest.mark.parametrize("shipment_first", [True, False], ids=["shipment-first", "cancel-first"])
def test_a_free_cancel_before_the_shipment_wins_whatever_arrives_first(
    start_worker, wire_client, event_listener, redis_client, shipment_first
):
    """Paid 10:00, cancelled 10:30 (inside the free hour), shipped 10:40."""
    start_worker()
    paid_at = ago(hours=2)
    order = paid_order(wire_client, redis_client, paid_at - timedelta(minutes=5), paid_at)
    cancel = message(
        "buyer.cancel_requested", order, paid_at + timedelta(minutes=30), reason="changed my mind"
    )
    ship = message("order.shipped", order, paid_at + timedelta(minutes=40), tracking_number="TRK1")
    sends = [(ORDER_EVENT, ship), (BUYER_ACTION, cancel)]
    send_in_order(wire_client, redis_client, order, 2, sends if shipment_first else sends[::-1])

    (cancelled,) = event_listener.wait_for("order.cancelled")
    (refund,) = event_listener.wait_for("refund.initiated")
    (refused,) = event_listener.wait_for("action.rejected")
    assert cancelled["subject"] == order and cancelled["data"]["by"] == "buyer"
    assert Decimal(refund["data"]["amount"]) == ORDER_TOTAL
    assert refused["data"]["message_id"] == ship["message_id"]
    assert refused["data"]["code"] == "order_cancelled"
    event_listener.assert_none("cancellation.requested", within=0.5)


@pytest.mark.parametrize("shipment_first", [True, False], ids=["shipment-first", "ask-first"])
def test_a_refund_only_before_the_shipment_is_refused_whatever_arrives_first(
    start_worker, wire_client, event_listener, redis_client, shipment_first
):
    start_worker()
    paid_at = ago(hours=3)
    order = paid_order(wire_client, redis_client, paid_at - timedelta(minutes=5), paid_at)
    ask = message(
        "buyer.return_requested",
        order,
        paid_at + timedelta(hours=1),
        request_id=new_id("r"),
        kind="refund_only",
        reason="not_received",
    )
    ship = message("order.shipped", order, paid_at + timedelta(hours=2))
    sends = [(ORDER_EVENT, ship), (BUYER_ACTION, ask)]
    send_in_order(wire_client, redis_client, order, 2, sends if shipment_first else sends[::-1])

    (refused,) = event_listener.wait_for("action.rejected")
    assert refused["data"]["message_id"] == ask["message_id"]
    assert refused["data"]["code"] == "not_shipped"
    event_listener.assert_none("return.requested", within=0.5)


# --- item 2: a message held for another request changes nothing for this one ------------------


def delivered_order(wire_client, redis_client, delivered_at: datetime) -> str:
    order = new_id("o")
    start = delivered_at - timedelta(days=2)
    for body in (
        placed(order, start),
        message("order.paid", order, start),
        message("order.shipped", order, start + timedelta(days=1)),
    ):
        wire_client.send(ORDER_EVENT, body)
    wire_client.send(ORDER_EVENT, message("order.delivered", order, delivered_at))
    wait_applied(redis_client, order, 4)
    return order


def return_request(order: str, request_id: str, at: datetime, sku: str) -> dict:
    return message(
        "buyer.return_requested",
        order,
        at,
        request_id=request_id,
        kind="refund_only",
        reason="damaged",
        items=[{"sku": sku, "quantity": 1}],
    )


@pytest.mark.parametrize(
    "held",
    [
        pytest.param("nothing", marks=pytest.mark.cluster),
        "until-its-request",
        "until-its-hold-ends",
    ],
)
def test_a_late_answer_never_overtakes_a_deadline_held_back_for_another_request(
    start_worker, start_beat, wire_client, event_listener, redis_client, held
):
    """r1's answer window ended at 12:00; the seller rejects r1 at 13:00. An approval of r2
    at 11:00, whose request is not known yet, may be held meanwhile: r1 ends auto-approved
    either way, and the late rejection is refused."""
    env = {**SWEEP, "AFTERSALES_HOLD_FOR": "PT8S"} if held == "until-its-hold-ends" else SWEEP
    start_worker(env=env)
    start_beat(env=env)
    window_ends = ago(hours=2)  # r1: asked 48 h before (US: calendar hours)
    order = delivered_order(wire_client, redis_client, window_ends - timedelta(days=3))
    version = 4
    if held != "nothing":
        r2_approval = message(
            "seller.return_approved", order, window_ends - timedelta(hours=1), request_id="r2"
        )
        send_in_order(wire_client, redis_client, order, version, [(SELLER_ACTION, r2_approval)])
        version += 1
    r1_request = return_request(order, "r1", window_ends - timedelta(hours=48), "SKU-2")
    send_in_order(wire_client, redis_client, order, version, [(BUYER_ACTION, r1_request)])
    rejection = message(
        "seller.return_rejected",
        order,
        window_ends + timedelta(hours=1),
        request_id="r1",
        reason="used",
    )
    wire_client.send(SELLER_ACTION, rejection)

    if held == "until-its-request":
        wait_applied(redis_client, order, version + 2)
        state = RedisStore(redis_client).load(order).state
        assert state is not None and state.returns["r1"].status == "requested"
        assert {str(p.message["message_id"]) for p in state.parked} == {
            r2_approval["message_id"],
            rejection["message_id"],
        }
        wire_client.send(
            BUYER_ACTION, return_request(order, "r2", window_ends - timedelta(hours=20), "SKU-1")
        )
        event_listener.wait_for(
            lambda e: e["type"] == "return.approved" and e["data"]["request_id"] == "r2", timeout=15
        )
    if held == "until-its-hold-ends":
        (letter,) = event_listener.dead_letters(timeout=30)
        assert letter["original"]["message_id"] == r2_approval["message_id"]

    (approved,) = event_listener.wait_for("return.auto_approved", timeout=30)
    (refused,) = event_listener.wait_for("action.rejected", timeout=15)
    assert approved["data"]["request_id"] == "r1"
    assert refused["data"]["message_id"] == rejection["message_id"]
    assert refused["data"]["code"] == "request_not_open"
    event_listener.assert_none("return.rejected", within=0.5)


@pytest.mark.cluster
def test_an_answer_that_happened_before_a_fired_deadline_is_refused_as_already_published(
    start_worker, start_beat, wire_client, event_listener, redis_client
):
    start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    window_ends = ago(hours=2)
    order = delivered_order(wire_client, redis_client, window_ends - timedelta(days=3))
    wire_client.send(
        BUYER_ACTION, return_request(order, "r1", window_ends - timedelta(hours=48), "SKU-2")
    )
    event_listener.wait_for("return.auto_approved", timeout=30)

    early = message(
        "seller.return_rejected",
        order,
        window_ends - timedelta(hours=1),
        request_id="r1",
        reason="used",
    )
    wire_client.send(SELLER_ACTION, early)

    (refused,) = event_listener.wait_for("action.rejected", timeout=15)
    assert refused["data"]["message_id"] == early["message_id"]
    assert refused["data"]["code"] == "outcome_already_published"
