"""Batch firing (worker/service_layer/scheduler.py `send_armed`, `fire_batch`) against a real
Redis and real worker and beat processes: a burst of deadlines due together goes out as a few
batch tasks, and a worker killed in the middle of one leaves every deadline fired once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_deadlines import SWEEP, UNPAID_AFTER
from tests.support.messages import new_id, placed
from tests.support.processes import wait_until
from worker.adapters.redis_store import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BURST = 800
"""Deadlines of the burst, due over 1 s: several batch tasks (one per BATCH_WIDTH of due
times at least), and enough firings that the kill lands while some are done and others not."""


class _NoPublisher:
    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        raise AssertionError(f"an unpaid order.placed published {entry}")


def place_unpaid_burst(client: Any, count: int, due_in: float, spread: float) -> list[str]:
    """`count` unpaid orders committed straight through the service (as a worker would),
    their expiries due `due_in` .. `due_in + spread` s from now."""
    from schemas.inbound import ANY_MESSAGE
    from worker.service_layer.service import Service
    from worker.settings import load_policy

    service = Service(RedisStore(client), _NoPublisher(), load_policy(None))
    start = datetime.now(UTC) - UNPAID_AFTER + timedelta(seconds=due_in)
    orders = [new_id("burst") for _ in range(count)]
    for i, order in enumerate(orders):
        at = start + timedelta(seconds=spread * i / count)
        outcome = service.handle_message(ANY_MESSAGE.validate_python(placed(order, at)))
        assert outcome.status == "applied", outcome
    return orders


def test_a_burst_fires_in_batch_tasks(start_worker, start_beat, redis_client, event_listener):
    worker = start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    orders = place_unpaid_burst(redis_client, 300, due_in=4, spread=0.5)

    cancelled = event_listener.wait_for("order.cancelled", timeout=60, count=len(orders))

    assert {event["subject"] for event in cancelled} == set(orders)
    assert "aftersales.deadline_batch" in worker.log_text()
    assert len(RedisStore(redis_client).lateness_values()) == len(orders)


def test_a_worker_killed_during_a_burst_leaves_every_deadline_fired_once(
    start_worker, start_beat, redis_client, event_listener
):
    doomed = start_worker(env=SWEEP)
    start_beat(env=SWEEP)
    orders = place_unpaid_burst(redis_client, BURST, due_in=6, spread=1.0)

    wait_until(
        lambda: len(RedisStore(redis_client).lateness_values()) > 0, 60, "the burst never began"
    )
    doomed.kill9()
    fired_at_kill = len(RedisStore(redis_client).lateness_values())
    start_worker(env=SWEEP)

    def all_fired() -> bool:
        pending = sum(RedisStore(redis_client).schedule_size())
        return pending == 0 and len(RedisStore(redis_client).lateness_values()) >= BURST

    wait_until(all_fired, 120, "every deadline of the burst to fire")
    event_listener.collect(3.0)  # a few more sweeps: a second firing would show now

    print(f"{fired_at_kill} of {BURST} fired when the worker was killed")
    assert 0 < fired_at_kill < BURST, "the kill did not land during the burst"
    assert len(RedisStore(redis_client).lateness_values()) == BURST  # one firing commit each
    ids: dict[str, set[str]] = defaultdict(set)

    def every_order_cancelled() -> bool:
        # Events the killed worker committed but had not confirmed are published by the
        # outbox relay, again if they had gone out: the same event, under its id.
        for event in event_listener.of_type("order.cancelled"):
            ids[event["subject"]].add(event["id"])
        return set(ids) == set(orders)

    wait_until(every_order_cancelled, 60, "an order.cancelled event for every order")
    assert {len(event_ids) for event_ids in ids.values()} == {1}
    store = RedisStore(redis_client)
    assert all(store.load(order).state.deadlines == {} for order in orders)
