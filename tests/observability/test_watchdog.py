"""The stalled-consumer watchdog: its rule at the edges (unit), and a real worker whose
consumer stops fetching while messages wait: it exits 75, its restart applies every
message, within 30 s."""

from __future__ import annotations

import time

import pytest

from tests.support.messages import ORDER_EVENT, ago, new_id, placed
from tests.support.processes import wait_until
from worker.observability.watchdog import EXIT_STALLED, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dog(waiting: int = 5, busy: bool = False) -> tuple[Watchdog, Clock]:
    """A watchdog with a 20 s stall time (it looks every 5 s) and a clock of our own."""
    clock = Clock()
    return Watchdog(20.0, lambda: waiting, lambda: busy, clock=clock), clock


def test_messages_waiting_unfetched_for_the_whole_stall_time_is_a_stall():
    watchdog, clock = dog()
    clock.now += 5  # a quiet spell of one period: messages are seen waiting from here
    assert watchdog.check() is False
    clock.now += 19.999
    assert watchdog.check() is False  # 1 ms short
    clock.now += 0.001
    assert watchdog.check() is True  # exactly stall_after


@pytest.mark.parametrize(
    ("waiting", "busy", "fetch_at", "stalled"),
    [
        (0, False, None, False),  # idle: nothing waits
        (5, True, None, False),  # busy: every process has a task
        (5, False, 10.0, False),  # it fetched while they waited
        (5, False, None, True),  # waiting, free, no fetch: stalled
    ],
)
def test_stall_table(waiting, busy, fetch_at, stalled):
    watchdog, clock = dog(waiting, busy)
    start = clock.now
    clock.now = start + 5  # first look after a quiet period
    watchdog.check()
    if fetch_at is not None:
        clock.now = start + fetch_at
        watchdog.fetched()
    clock.now = start + 25  # 20 s after the first look
    assert watchdog.check() is stalled


def test_a_fetch_resets_the_count():
    watchdog, clock = dog()
    clock.now += 5
    watchdog.check()
    clock.now += 15
    watchdog.fetched()
    clock.now += 6  # 21 s after they were first seen, 6 s after the fetch
    assert watchdog.check() is False
    clock.now += 20
    assert watchdog.check() is True  # a new spell, seen from the last look


@pytest.mark.integration
def test_a_worker_that_stops_fetching_exits_and_its_restart_applies_everything(
    start_worker, wire_client, redis_client, broker_url
):
    from celery import Celery

    env = {"AFTERSALES_STALL_AFTER": "PT4S"}
    stalled = start_worker(concurrency=1, env=env)
    # Given a consumer that silently stops fetching (Celery's own cancel_consumer: the
    # worker still answers pings, logs nothing per message, takes nothing)
    control = Celery(broker=broker_url)
    replies = control.control.cancel_consumer(
        "aftersales.inbound", destination=[stalled.name], reply=True, timeout=5
    )
    control.close()
    assert replies, "the worker did not answer cancel_consumer"
    began = time.monotonic()
    orders = [new_id("o") for _ in range(5)]
    for order in orders:
        wire_client.send(ORDER_EVENT, placed(order, ago(minutes=1)))

    # Then the watchdog makes it exit 75, and a restart (the supervisor's job) applies all
    wait_until(lambda: not stalled.alive(), 30, lambda: stalled._failure("exit on stall"))
    assert stalled.process.wait(5) == EXIT_STALLED
    assert "consumer stalled" in stalled.log_text()
    start_worker(concurrency=1, env=env)

    def applied() -> bool:
        return all(redis_client.exists(f"aftersales:order:{{{order}}}") for order in orders)

    wait_until(applied, 30, "not every message was applied after the restart")
    assert time.monotonic() - began < 30
