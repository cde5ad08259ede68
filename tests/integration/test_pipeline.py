"""The walking skeleton end to end: a bare Celery producer, a real worker, real Redis,
CloudEvents read from a queue bound to `#`, and the dead-letter queue."""

from __future__ import annotations

import json
import pickle
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
    ts,
)
from tests.support.state import paid_order
from tests.support.wire import protocol2_body, task_headers

pytestmark = pytest.mark.integration


@pytest.mark.rabbitmq
@pytest.mark.cluster
def test_buyer_cancel_after_payment_in_free_window_refunds_in_full(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker()
    order = paid_order(wire_client, redis_client, ago(minutes=40), ago(minutes=30))

    wire_client.send(
        BUYER_ACTION,
        message("buyer.cancel_requested", order, ago(minutes=1), reason="found it cheaper"),
    )

    (cancelled,) = event_listener.wait_for("order.cancelled")
    (refund,) = event_listener.wait_for("refund.initiated")
    assert cancelled["specversion"] == "1.0" and cancelled["source"] == "aftersales"
    assert cancelled["subject"] == order
    assert cancelled["datacontenttype"] == "application/json"
    assert cancelled["data"]["by"] == "buyer" and cancelled["data"]["seller_fault"] is False
    # 2 x 10.00 + 25.50 + 4.99 shipping: everything paid comes back.
    assert cancelled["data"]["refund"] == {"amount": "50.49", "currency": "USD"}
    assert Decimal(refund["data"]["amount"]) == Decimal("50.49")
    assert refund["data"]["request_id"] is None
    assert refund["data"]["breakdown"]["shipping_fee"] == "4.99"


def test_buyer_cancel_before_payment_is_immediate_and_refunds_nothing(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="mistake")
    )
    (cancelled,) = event_listener.wait_for("order.cancelled")
    assert cancelled["data"]["refund"] is None
    event_listener.assert_none("refund.initiated", within=1.0)


def test_seller_cancel_after_ready_to_ship_is_rejected(
    start_worker, wire_client, event_listener, redis_client
):
    from worker.adapters.redis_store import RedisStore

    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(hours=3)))
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(hours=2)))
    wire_client.send(ORDER_EVENT, message("order.ready_to_ship", order, ago(hours=1)))
    # Arrival order decides here (docs/rules.md): the seller cancels once the worker
    # knows the parcel is ready, not merely after it happened somewhere else.
    store = RedisStore(redis_client)
    _wait(lambda: (s := store.load(order).state) is not None and s.ready_to_ship_at is not None)
    cancel = message("seller.order_cancelled", order, ago(minutes=1), reason="out of stock")

    wire_client.send(SELLER_ACTION, cancel)

    (rejected,) = event_listener.wait_for("action.rejected")
    assert rejected["data"]["message_id"] == cancel["message_id"]
    assert rejected["data"]["type"] == "seller.order_cancelled"
    assert rejected["data"]["code"]
    event_listener.assert_none("order.cancelled", within=1.0)


def test_seller_cancel_before_ready_to_ship_counts_against_the_shop(
    start_worker, wire_client, event_listener
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(hours=3)))
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(hours=2)))
    wire_client.send(
        SELLER_ACTION,
        message("seller.order_cancelled", order, ago(minutes=1), reason="out of stock"),
    )
    (cancelled,) = event_listener.wait_for("order.cancelled")
    assert cancelled["data"]["by"] == "seller" and cancelled["data"]["seller_fault"] is True
    event_listener.wait_for("refund.initiated")


@pytest.mark.rabbitmq
@pytest.mark.cluster
def test_the_same_message_sent_three_times_is_applied_once(
    start_worker, wire_client, event_listener
):
    start_worker(concurrency=2)
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    cancel = message("buyer.cancel_requested", order, ago(minutes=1), reason="mistake")
    for _ in range(3):
        wire_client.send(BUYER_ACTION, cancel)

    event_listener.wait_for("order.cancelled")
    event_listener.collect(2.0)
    assert len(event_listener.of_type("order.cancelled")) == 1


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("task", "body", "expected"),
    [
        (ORDER_EVENT, "not an object", "message"),
        (ORDER_EVENT, {"type": "order.paid"}, "message_id"),
        (
            ORDER_EVENT,
            {
                "message_id": "m",
                "type": "order.exploded",
                "order_id": "o",
                "occurred_at": "2026-01-01T00:00:00Z",
            },
            "order.exploded",
        ),
        (
            BUYER_ACTION,
            {
                "message_id": "m",
                "type": "order.paid",
                "order_id": "o",
                "occurred_at": "2026-01-01T00:00:00Z",
            },
            "aftersales.order_event",
        ),
        (
            ORDER_EVENT,
            {
                "message_id": "m",
                "type": "order.paid",
                "order_id": "o",
                "occurred_at": "2026-01-01 00:00:00",
            },
            "occurred_at",
        ),
        (
            ORDER_EVENT,
            {
                "message_id": "m",
                "type": "order.paid",
                "order_id": "o",
                # A day ahead: this is computed at collection, minutes before it runs.
                "occurred_at": ts(ago(days=-1)),
            },
            "future",
        ),
    ],
    ids=["not-an-object", "missing-fields", "unknown-type", "wrong-task", "naive-time", "future"],
)
def test_invalid_message_is_dead_lettered_and_the_worker_goes_on(
    start_worker, wire_client, event_listener, task, body, expected
):
    start_worker()
    wire_client.send_raw(protocol2_body(body), headers=task_headers(task))

    (letter,) = event_listener.dead_letters()
    assert letter["task"] == task
    assert letter["original"] == body
    assert expected in letter["error"]
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    )
    event_listener.wait_for("order.cancelled")


@pytest.mark.rabbitmq
def test_bad_json_is_dead_lettered_with_its_original_body(
    start_worker, wire_client, event_listener
):
    start_worker()
    wire_client.send_raw(b'[[{"message_id": ', headers=task_headers(ORDER_EVENT))
    (letter,) = event_listener.dead_letters()
    assert letter["reason"] == "undecodable"
    assert letter["original"]["text"] == '[[{"message_id": '


@pytest.mark.rabbitmq
def test_pickle_is_refused_and_never_executed(start_worker, wire_client, event_listener, tmp_path):
    start_worker()
    marker = tmp_path / "pwned"
    # Were this unpickled, it would create the marker file.
    payload = pickle.dumps(((f"touch {marker}",), {}, {}), protocol=2)
    wire_client.send_raw(
        payload,
        content_type="application/x-python-serialize",
        content_encoding="binary",
        headers=task_headers(ORDER_EVENT),
    )
    (letter,) = event_listener.dead_letters()
    assert letter["content_type"] == "application/x-python-serialize"
    assert "original" in letter
    assert not marker.exists()


def test_extra_positional_arguments_are_dead_lettered(start_worker, wire_client, event_listener):
    start_worker()
    body = json.dumps([["a", "b"], {}, {"callbacks": None, "errbacks": None, "chain": None}])
    wire_client.send_raw(body.encode(), headers=task_headers(ORDER_EVENT))
    (letter,) = event_listener.dead_letters()
    assert "exactly one positional argument" in letter["error"]


@pytest.mark.rabbitmq
def test_unknown_task_name_is_dead_lettered(start_worker, wire_client, event_listener):
    start_worker()
    wire_client.send("aftersales.nonsense", {"message_id": "m"})
    (letter,) = event_listener.dead_letters()
    assert letter["reason"] == "unknown_task"
    assert json.loads(letter["original"]["text"])[0] == [{"message_id": "m"}]


@pytest.mark.rabbitmq
@pytest.mark.cluster
def test_messages_of_one_order_racing_through_two_workers_lose_no_update(
    start_worker, wire_client, event_listener, redis_client
):
    from worker.adapters.redis_store import RedisStore  # the checking side may read state

    first, second = start_worker(concurrency=2), start_worker(concurrency=2)
    orders = [new_id("o") for _ in range(20)]
    for order in orders:
        wire_client.send(ORDER_EVENT, placed(order, ago(hours=2)))
    store = RedisStore(redis_client)
    _wait(lambda: all(store.load(order).version == 1 for order in orders))

    for order in orders:  # two independent facts of one order, back to back
        wire_client.send(ORDER_EVENT, message("order.paid", order, ago(hours=1)))
        wire_client.send(ORDER_EVENT, message("order.ready_to_ship", order, ago(minutes=30)))

    _wait(lambda: all(store.load(order).version == 3 for order in orders))
    for order in orders:
        state = store.load(order).state
        assert state is not None and state.paid_at is not None
        assert state.ready_to_ship_at is not None, f"lost update on {order}"
    races = (first.log_text() + second.log_text()).count("lost a commit race")
    print(f"commit races resolved by retry: {races}")


def _wait(condition, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
