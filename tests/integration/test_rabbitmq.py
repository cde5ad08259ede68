"""RabbitMQ as the broker (docs/operations.md#rabbitmq): what only RabbitMQ mode can show.

Run with `--broker=rabbitmq`; skipped otherwise. The contract, dead-letter and deadline
tests run in that mode too, unchanged.
"""

from __future__ import annotations

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq_only, pytest.mark.rabbitmq]

INBOUND = "aftersales.inbound"
BURST = 60
"""Orders in the kill -9 burst: enough that the worker is killed with some taken and many
still queued on a loaded 2-core machine (two messages per order)."""


def declare(url: str, queue: str, arguments: dict[str, str]) -> int:
    """Declare `queue` (durable) with `arguments`; its message count. RabbitMQ refuses a
    declare that does not match the queue's type with PRECONDITION_FAILED."""
    with Connection(url) as connection:
        channel = connection.channel()
        try:
            return int(
                channel.queue_declare(
                    queue, durable=True, auto_delete=False, arguments=arguments
                ).message_count
            )
        finally:
            channel.close()


def test_the_inbound_queue_is_a_quorum_queue_and_the_timer_queues_are_classic(
    start_worker, broker_url, rabbitmq_node
):
    start_worker(concurrency=1)

    declare(broker_url, INBOUND, {"x-queue-type": "quorum"})  # equivalent: accepted
    with pytest.raises(PreconditionFailed, match="quorum"):
        declare(broker_url, INBOUND, {"x-queue-type": "classic"})
    with pytest.raises(PreconditionFailed, match="x-queue-type"):
        declare(broker_url, "aftersales.deadlines", {"x-queue-type": "quorum"})
    if rabbitmq_node is not None:  # our own node: ask it as an operator would
        lines = rabbitmq_node.ctl("list_queues", "name", "type").splitlines()
        listed = dict(line.split("\t") for line in lines if "\t" in line)
        assert listed[INBOUND] == "quorum", listed
        assert listed["aftersales.deadlines"] == "classic", listed
        assert listed["aftersales.control"] == "classic", listed


def test_the_worker_publishes_with_confirms(
    start_worker, wire_client, event_listener, rabbitmq_node
):
    if rabbitmq_node is None:
        pytest.skip("needs rabbitmqctl on the test's own node")
    worker = start_worker(concurrency=1)
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    )
    event_listener.wait_for("order.cancelled")

    channels = rabbitmq_node.ctl("list_channels", "pid", "confirm", "user", "connection")
    confirming = [line for line in channels.splitlines() if "\ttrue\t" in line]
    assert confirming, f"no channel in confirm mode; worker {worker.name}:\n{channels}"


def test_a_worker_killed_with_9_mid_burst_loses_nothing(
    start_worker, start_beat, wire_client, event_listener, broker_url
):
    """No reliable-fetch transport with RabbitMQ: the messages the killed worker had taken
    (acks are late) come back when its connection dies, and the next worker applies them.
    What it committed but had not published yet, beat's outbox relay publishes."""
    doomed = start_worker(concurrency=2)
    start_beat()
    orders = [new_id("o") for _ in range(BURST)]
    for order in orders:
        wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
        wire_client.send(
            BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
        )
    event_listener.wait_for("order.cancelled", count=3)
    doomed.kill9()  # the whole group: pool processes die with what they hold
    seen = {event["subject"] for event in event_listener.of_type("order.cancelled")}
    left = declare(broker_url, INBOUND, {"x-queue-type": "quorum"})
    assert len(seen) < BURST and left > 0, "the burst ended before the kill: nothing tested"

    start_worker(concurrency=2)
    event_listener.wait_for("order.cancelled", count=BURST, timeout=120)
    wait_until(
        lambda: {e["subject"] for e in event_listener.of_type("order.cancelled")} >= set(orders),
        30,
        "an order of the burst was never cancelled",
    )
    cancelled = event_listener.of_type("order.cancelled")
    by_order: dict[str, set[str]] = {}
    for event in cancelled:  # a re-published event keeps its id: a duplicate, not a re-run
        by_order.setdefault(event["subject"], set()).add(event["id"])
    assert set(by_order) == set(orders)
    assert all(len(ids) == 1 for ids in by_order.values()), "an order was cancelled twice"


def test_a_message_that_keeps_coming_back_is_dead_lettered_by_rabbitmq(
    wire_client, event_listener, broker_url, rabbitmq_node
):
    """The inbound policy (docs/operations.md#rabbitmq): a message given back 20 times (a
    body that kills every worker taking it) goes to the dead-letter queue, not round and
    round; so does one rejected without requeue. No worker runs: a bare consumer plays the
    dying one."""
    if rabbitmq_node is None:
        pytest.skip("the policy is set on the test's own node")
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    deliveries = 0
    with Connection(broker_url) as connection:
        channel = connection.channel()
        wait_until(lambda: declare(broker_url, INBOUND, {"x-queue-type": "quorum"}) > 0, 30)
        while (taken := channel.basic_get(INBOUND)) is not None and deliveries < 50:
            deliveries += 1
            channel.basic_reject(taken.delivery_tag, requeue=True)
        channel.close()

    (letter,) = event_listener.dead_letters(match=lambda body: isinstance(body, list))
    assert letter[0][0]["order_id"] == order  # the task body as sent: [args, kwargs, embed]
    assert deliveries == 21, deliveries  # the first delivery and 20 redeliveries
