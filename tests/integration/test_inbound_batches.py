"""Inbound messages taken together are decided and committed together
(worker/shell/batch.py), each still applied once, acked after its commit, with its own log
line, metrics and dead letters; a pool process killed under a batch loses and repeats
nothing. Real worker, real Redis."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.observability.scraping import free_port_pair, scrape, value
from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.processes import wait_until
from tests.support.state import versions

pytestmark = pytest.mark.integration

SUCCEEDED = "] succeeded in "


def _nothing_held(client: redis.Redis) -> bool:
    """No message taken and not acked, no order with a message in flight."""
    held = [key for key in client.keys("aftersales:fetch:held:*") if client.hlen(key)]
    return client.hlen("unacked") == 0 and not held and not client.keys("aftersales:inflight:*")


def _lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_a_backlog_is_decided_in_batches_and_each_message_is_applied_once_with_its_own_line(
    start_worker, wire_client, event_listener, redis_client
):
    orders = [new_id("o") for _ in range(40)]
    sent: dict[str, str] = {}  # task id -> order
    for order in orders:  # a backlog before the worker starts: batches form at once
        sent[wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30)))] = order
    for order in orders:
        cancel = message("buyer.cancel_requested", order, ago(minutes=1), reason="changed")
        sent[wire_client.send(BUYER_ACTION, cancel)] = order
    bad = wire_client.send(BUYER_ACTION, message("buyer.cancel_requested", orders[0], ago()))
    port = free_port_pair()

    worker = start_worker(env={"AFTERSALES_METRICS_PORT": str(port)})

    cancelled = event_listener.wait_for("order.cancelled", timeout=60, count=len(orders))
    assert sorted(event["subject"] for event in cancelled) == sorted(orders)
    wait_until(lambda: _nothing_held(redis_client), 30, "messages left taken or in flight")
    assert set(versions(redis_client, orders)) == {2}  # placed, cancelled: once each
    event_listener.collect(0.5)  # anything more that was coming
    assert len(event_listener.of_type("order.cancelled")) == len(orders)  # none twice
    # The message without a reason is refused by validation, dead-lettered, acked.
    (letter,) = event_listener.dead_letters(timeout=10)
    assert letter["reason"] == "invalid_message" and "reason" in letter["error"]

    samples = scrape(port)
    batches = value(samples, "aftersales_inbound_batch_messages_count")
    messages = value(samples, "aftersales_inbound_batch_messages_sum")
    assert messages == len(sent) + 1 and batches < messages, (batches, messages)
    # Each request waited for its order's placement (one worker decides one order's
    # messages in the order it took them, worker/shell/batch.py): applied, never held.
    applied = value(samples, "aftersales_messages_total", task=BUYER_ACTION, result="applied")
    assert applied == len(orders), applied

    # One "succeeded" line per message, carrying what became of it, and no other end.
    wait_until(lambda: worker.log_text().count(SUCCEEDED) >= len(sent) + 1, 20, "succeeded lines")
    ends = [line for line in _lines(worker.log_text()) if SUCCEEDED in line["event"]]
    by_task = {line["task_id"]: line for line in ends}
    assert len(ends) == len(by_task) == len(sent) + 1
    for task_id, order in sent.items():
        assert by_task[task_id]["order_id"] == order
        assert by_task[task_id]["status"] == "applied", by_task[task_id]
    assert "'dead_lettered'" in by_task[bad]["event"]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def test_a_pool_process_killed_under_a_batch_loses_and_repeats_nothing(
    start_worker, wire_client, redis_client
):
    """Redis is paused while the pool processes hold batches, so the kill lands in one;
    the worker hands the lost batch's messages to Celery's own path, one task each, and
    those the batch had committed are duplicates there."""
    orders = [new_id("o") for _ in range(3000)]  # a backlog of seconds, on a busy machine too
    for order in orders:
        wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30)))
    worker = start_worker()

    deadline = time.monotonic() + 120
    while "batch lost" not in worker.log_text():
        assert time.monotonic() < deadline, "no kill landed in a batch:\n" + worker.log_text()
        left = sum(1 for v in versions(redis_client, orders) if v == 0)
        assert left, "drained before a kill landed in a batch"
        redis_client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
        try:
            time.sleep(0.3)  # not a wait for a fact: lets the pool reach the paused Redis
            for child in _children(worker.pid):
                os.kill(child, signal.SIGKILL)
        finally:
            redis_client.execute_command("CLIENT", "UNPAUSE")
        wait_until(lambda: len(_children(worker.pid)) >= 2, 30, "the pool was not refilled")

    wait_until(
        lambda: all(v >= 1 for v in versions(redis_client, orders)),
        120,
        lambda: f"{sum(1 for v in versions(redis_client, orders) if v == 0)} orders lost",
    )
    assert set(versions(redis_client, orders)) == {1}, "an order.placed applied twice"
    wait_until(lambda: _nothing_held(redis_client), 30, "messages left taken or in flight")
    assert worker.alive()


def test_a_revoked_message_is_discarded_and_leaves_nothing_in_flight(
    start_worker, wire_client, redis_client, broker_url
):
    """`revoke` (celery control, Flower) names a task id: the worker discards that message
    as Celery does, the batch path included, acks it and drops its in-flight entry (which
    would hold its order's deadlines back until it turned stale); the same message under
    another id is applied."""
    worker = start_worker()
    task_id = str(uuid.uuid4())
    control = Celery("aftersales-test-control", broker=broker_url, set_as_current=False)
    try:
        control.control.revoke(task_id)

        def listed() -> bool:
            inspect = control.control.inspect(destination=[worker.name], timeout=1)
            return task_id in ((inspect.revoked() or {}).get(worker.name) or [])

        wait_until(listed, 30, "the worker never listed the revoked task id")
    finally:
        control.close()
    order, others = new_id("o"), [new_id("o") for _ in range(30)]
    body = placed(order, ago(minutes=30))
    for other in others[:15]:  # among others, which go in batches
        wire_client.send(ORDER_EVENT, placed(other, ago(minutes=30)))
    wire_client.send(ORDER_EVENT, body, task_id=task_id)
    for other in others[15:]:
        wire_client.send(ORDER_EVENT, placed(other, ago(minutes=30)))

    worker.wait_for_log(f"Discarding revoked task: {ORDER_EVENT}[{task_id}]", 60)
    wait_until(lambda: set(versions(redis_client, others)) == {1}, 60, "others not applied")
    wait_until(lambda: _nothing_held(redis_client), 30, "messages left taken or in flight")
    assert versions(redis_client, [order]) == [0], "the revoked message was applied"

    wire_client.send(ORDER_EVENT, body)  # the revoke named the task, not the message
    wait_until(lambda: versions(redis_client, [order]) == [1], 60, "not applied under a new id")
    assert worker.alive()
