"""Durable deadlines against a real Redis and real worker and beat processes.

Deadlines are made a few seconds out by giving messages event times in the past: an
unpaid prepaid order placed 48 h minus 4 s ago expires in 4 s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    SELLER_ACTION,
    message,
    new_id,
    placed,
)
from tests.support.state import paid_order
from tests.support.wire import EventListener, WireClient

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S", "AFTERSALES_FETCH_WAIT": "PT0.5S"}
"""A fast tick, and a fetch that looks at the deadlines and control queues as often: these
tests bound lateness through a kill and a restart, where every hop of an idle worker
(the tick, then the task it arms or re-sends) would otherwise wait up to 2 s."""
UNPAID_AFTER = timedelta(hours=48)
LATE_BOUND = 10.0
"""Seconds a deadline may fire after its time in these tests: the sweep bound (2 s grace
plus the period) with room for a loaded 2-core CI machine, and 30x below the visibility
timeout that a lost ETA task would otherwise wait."""


def place_unpaid(wire_client: WireClient, due_in: float) -> tuple[str, datetime]:
    """An unpaid prepaid order whose 48 h expiry is `due_in` seconds from now."""
    order = new_id("o")
    placed_at = datetime.now(UTC) - UNPAID_AFTER + timedelta(seconds=due_in)
    wire_client.send(ORDER_EVENT, placed(order, placed_at))
    return order, placed_at + UNPAID_AFTER


def arrival_lateness(event: dict, due: datetime) -> float:
    return time.time() - due.timestamp()


def wait_armed(redis_client, order: str, timeout: float = 30.0) -> None:
    from worker.adapters.redis_store import RedisStore

    space = RedisStore(redis_client).keys
    armed = space.armed(space.shard_of(order))  # the order's shard (one key on one Redis)
    end = time.monotonic() + timeout
    while not any(order in m.decode() for m in redis_client.zrange(armed, 0, -1)):
        assert time.monotonic() < end, "the deadline was never armed"
        time.sleep(0.05)


@pytest.mark.cluster
def test_a_deadline_fires_once_at_its_time(start_worker, start_beat, wire_client, event_listener):
    start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    order, due = place_unpaid(wire_client, due_in=6)

    (cancelled,) = event_listener.wait_for("order.cancelled", timeout=45)
    late = arrival_lateness(cancelled, due)

    assert cancelled["subject"] == order and cancelled["data"]["by"] == "platform"
    assert cancelled["data"]["refund"] is None
    # Never early; late by the armed task's pace, with room for a loaded CI machine, far
    # below the visibility timeout (300 s) that a lost ETA task would cost. The on-time
    # figures (p50/p99) are bench/deadlines.py's business, not a timed test's.
    assert -0.05 <= late < LATE_BOUND, f"fired {late:.2f}s after its due time"
    event_listener.collect(2.0)
    assert len(event_listener.of_type("order.cancelled")) == 1


@pytest.mark.cluster
def test_kill_9_of_the_worker_holding_the_eta_task_still_fires_once(
    start_worker, start_beat, wire_client, event_listener, redis_client
):
    doomed = start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    order, due = place_unpaid(wire_client, due_in=5)
    wait_armed(redis_client, order)
    doomed.wait_for_log("aftersales.deadline", timeout=45)  # it holds the ETA task now

    doomed.kill9()
    start_worker(env=SWEEP)

    (cancelled,) = event_listener.wait_for("order.cancelled", timeout=45)
    # Bounded by the sweep (grace 2 s + period), not by the 300 s visibility timeout.
    assert arrival_lateness(cancelled, due) < LATE_BOUND
    event_listener.collect(2.0)
    assert len(event_listener.of_type("order.cancelled")) == 1


@pytest.mark.single_redis("broker and state in two databases of the session's Redis")
@pytest.mark.redis_broker("runs its own Redis broker in db 1 and flushes it")
def test_a_flushed_broker_still_fires_from_the_durable_schedule(
    start_worker, start_beat, redis_url, redis_client
):
    broker_url = redis_url.rsplit("/", 1)[0] + "/1"  # broker in db 1, state in db 0
    env = {**SWEEP, "AFTERSALES_BROKER_URL": broker_url}
    listener, producer = EventListener(broker_url), WireClient(broker_url)
    try:
        first = start_worker(env=env)
        start_beat(env=env)
        order, due = place_unpaid(producer, due_in=5)
        wait_armed(redis_client, order)
        first.kill9()
        broker = type(redis_client).from_url(broker_url)
        broker.flushdb()  # every queued and unacked message is gone
        broker.close()
        listener = EventListener(broker_url)  # its queue went with the flush
        start_worker(env=env)

        (cancelled,) = listener.wait_for("order.cancelled", timeout=45)
        assert cancelled["subject"] == order
        assert arrival_lateness(cancelled, due) < LATE_BOUND
    finally:
        listener.close()
        producer.close()


def open_cancel_request(
    wire_client: WireClient, state: redis.Redis, respond_in: float
) -> tuple[str, datetime]:
    """A paid order with a buyer cancel request whose 48 h answer window ends soon."""
    requested_at = datetime.now(UTC) - timedelta(hours=48) + timedelta(seconds=respond_in)
    # Paid must be known before the request arrives, or it is an unpaid order's instant
    # cancellation (arrival order decides: docs/rules.md).
    order = paid_order(
        wire_client, state, requested_at - timedelta(hours=3), requested_at - timedelta(hours=2)
    )
    wire_client.send(
        BUYER_ACTION,
        message("buyer.cancel_requested", order, requested_at, reason="changed my mind"),
    )
    return order, requested_at + timedelta(hours=48)


def test_a_seller_answer_before_the_deadline_means_nothing_fires(
    start_worker, start_beat, wire_client, event_listener, redis_client
):
    start_worker(env=SWEEP)
    order, respond_by = open_cancel_request(wire_client, redis_client, respond_in=4)
    event_listener.wait_for("cancellation.requested")

    wire_client.send(
        SELLER_ACTION,
        message(
            "seller.cancel_rejected",
            order,
            respond_by - timedelta(seconds=3),
            reason="already packed",
        ),
    )
    # Beat arms deadlines; started only now, however slow the machine was above, the
    # answer is sent before its deadline can fire, as the scenario says.
    start_beat(env=SWEEP)

    event_listener.wait_for("cancellation.rejected")
    time.sleep(max(0.0, respond_by.timestamp() - time.time()) + 2.0)
    event_listener.assert_none("cancellation.auto_accepted", within=0.5)
    event_listener.assert_none("order.cancelled", within=0.1)


@pytest.mark.cluster
def test_a_deadline_does_not_overtake_an_earlier_answer_still_in_the_inbound_queue(
    start_worker, start_beat, wire_client, event_listener, redis_client
):
    """The seller rejected at 47 h, but the inbound queue is behind: no auto-accept."""
    backlog_scenario(start_worker, start_beat, wire_client, event_listener, redis_client, SWEEP)


@pytest.mark.single_redis("broker and state in two databases of the session's Redis")
@pytest.mark.redis_broker(
    "runs its own Redis broker in db 1; with RabbitMQ the test before reads the queue there"
)
def test_backlog_safety_reads_the_queue_from_the_broker_when_it_is_elsewhere(
    start_worker, start_beat, redis_url, redis_client
):
    broker_url = redis_url.rsplit("/", 1)[0] + "/1"  # state in db 0, queues in db 1
    producer, listener = WireClient(broker_url), EventListener(broker_url)
    try:
        backlog_scenario(
            start_worker,
            start_beat,
            producer,
            listener,
            redis_client,
            {**SWEEP, "AFTERSALES_BROKER_URL": broker_url},
        )
    finally:
        listener.close()
        producer.close()


def backlog_scenario(start_worker, start_beat, producer, listener, state, env) -> None:
    timers_only = start_worker(env=env, queues=("aftersales.deadlines", "aftersales.control"))
    inbound = start_worker(env=env)
    order, respond_by = open_cancel_request(producer, state, respond_in=4)
    listener.wait_for("cancellation.requested")
    inbound.stop()  # from now on the inbound queue backs up

    producer.send(
        SELLER_ACTION,
        message(
            "seller.cancel_rejected",
            order,
            respond_by - timedelta(hours=1),
            reason="already packed",
        ),
    )
    start_beat(env=env)  # deadlines are armed from now: the answer is already queued
    time.sleep(max(0.0, respond_by.timestamp() - time.time()))
    timers_only.wait_for_log("aftersales.deadline")  # due, taken, and held back
    listener.assert_none("cancellation.auto_accepted", within=1.0)

    start_worker(env=env)  # the backlog drains: the answer first, then the barrier
    listener.wait_for("cancellation.rejected", timeout=45)
    listener.assert_none("cancellation.auto_accepted", within=3.0)


def test_the_same_deadline_scheduled_twice_fires_once(
    start_worker, start_beat, wire_client, event_listener, redis_client, broker_url
):
    from worker.adapters.redis_store import RedisStore

    start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    order, due = place_unpaid(wire_client, due_in=4)
    wait_armed(redis_client, order)
    (deadline_id,) = RedisStore(redis_client).load(order).state.deadlines
    sender = WireClient(broker_url)
    try:  # two more ETA tasks for the same deadline, as a replayed or duplicated arm would
        for _ in range(2):
            sender.celery.send_task(
                "aftersales.deadline",
                args=[order, deadline_id, None],
                queue="aftersales.deadlines",
                eta=due,
                declare=[],  # the worker declared it (a classic queue on RabbitMQ)
            )
    finally:
        sender.close()

    event_listener.wait_for("order.cancelled", timeout=45)
    event_listener.collect(3.0)
    assert len(event_listener.of_type("order.cancelled")) == 1
