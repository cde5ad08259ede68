"""An idle worker and beat print nothing per tick; real tasks keep their lines."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.wire import task_headers

pytestmark = pytest.mark.integration

# Every interval's tick sent, idle or not (beat skips idle ones by default).
FAST_TICK = {"AFTERSALES_SWEEP_INTERVAL": "PT0.2S", "AFTERSALES_IDLE_TICK_EVERY": "PT0S"}
# What Celery logs per run of a periodic task: beat's send, the worker's receipt and success.
PER_TICK = re.compile(
    r"Sending due task (\S+)|Task (aftersales\.\w+)\[[^\]]+\] (received|succeeded)"
)


def ticks_run(broker_url: str, node: str) -> int:
    """How many aftersales.tick the worker has run, as it reports itself (not its log)."""
    client = Celery("aftersales-test-stats", broker=broker_url, set_as_current=False)
    try:
        stats = client.control.inspect(destination=[node], timeout=1.0).stats() or {}
    finally:
        client.close()
    return int(stats.get(node, {}).get("total", {}).get("aftersales.tick", 0))


def per_tick_lines(log: str) -> Counter[str]:
    """Lines about one run of a task, counted per task name (beat's entry name for beat)."""
    counts: Counter[str] = Counter()
    for line in log.splitlines():
        if found := PER_TICK.search(line):
            counts[found.group(1) or found.group(2)] += 1
    return counts


def test_idle_worker_and_beat_are_silent_while_real_tasks_keep_their_lines(
    redis_url, start_worker, start_beat, wire_client, event_listener
):
    worker = start_worker(env=FAST_TICK)
    beat = start_beat(env=FAST_TICK)
    wait_until(lambda: ticks_run(redis_url, worker.name) >= 10, 40, "the tick never ran 10 times")

    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION,
        message("buyer.cancel_requested", order, ago(minutes=1), reason="changed my mind"),
    )
    event_listener.wait_for("order.cancelled", timeout=20)
    # The event is out with the commit, before Celery logs the task's end: wait for that.
    wait_until(
        lambda: per_tick_lines(worker.log_text())[BUYER_ACTION] >= 2,
        20,
        lambda: f"no 'succeeded' line for {BUYER_ACTION}:\n" + worker.log_text(),
    )

    worker_lines = per_tick_lines(worker.log_text())
    assert worker_lines["aftersales.tick"] == 0, worker.log_text()
    assert per_tick_lines(beat.log_text()) == Counter(), beat.log_text()
    # Real tasks: received and succeeded, each one JSON line (the log is not a terminal).
    assert worker_lines[ORDER_EVENT] == 2 and worker_lines[BUYER_ACTION] == 2
    for line in worker.log_text().splitlines():
        if PER_TICK.search(line):
            assert json.loads(line)["level"] == "info"
    # One line per message says what became of it: Celery's "succeeded" line carries the
    # order, the message, its outcome and the events it published.
    succeeded = [
        json.loads(line)
        for line in worker.log_text().splitlines()
        if f"{BUYER_ACTION}[" in line and "succeeded" in line
    ]
    assert len(succeeded) == 1, worker.log_text()
    line = succeeded[0]
    assert line["order_id"] == order and line["message_type"] == "buyer.cancel_requested"
    assert line["status"] == "applied" and "order.cancelled" in line["events"], line
    assert line["version"] >= 2 and line["message_id"], line


def test_at_debug_beat_shows_each_tick_again(start_beat):
    beat = start_beat(env=FAST_TICK, loglevel="DEBUG")

    wait_until(
        lambda: per_tick_lines(beat.log_text())["aftersales-tick"] >= 3,
        30,
        lambda: "beat never showed three ticks at DEBUG:\n" + beat.log_text(),
    )


def _lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("loglevel", ["INFO", "WARNING"])
def test_the_loglevel_applies_to_the_workers_own_lines(
    start_worker, start_beat, wire_client, event_listener, loglevel
):
    """`--loglevel WARNING` keeps the worker's own info lines (`deadline fired`) out too,
    not only Celery's; warnings (a dead letter) stay. At INFO both are there."""
    worker = start_worker(env={"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}, loglevel=loglevel)
    start_beat(env={"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"})
    order = new_id("o")  # unpaid, its 48 h expiry due in 2 s
    wire_client.send(
        ORDER_EVENT, placed(order, datetime.now(UTC) - timedelta(hours=48, seconds=-2))
    )
    event_listener.wait_for("order.cancelled", timeout=45)
    wire_client.send_raw(b"[1, 2, 3]", headers=task_headers(BUYER_ACTION))
    event_listener.dead_letters(timeout=20.0)
    wait_until(
        lambda: any(line["event"] == "task message refused" for line in _lines(worker.log_text())),
        20,
        lambda: "no dead-letter warning:\n" + worker.log_text(),
    )
    if loglevel == "INFO":  # the firing's own line comes before its task ends
        wait_until(
            lambda: any(line["event"] == "deadline fired" for line in _lines(worker.log_text())),
            20,
            lambda: "no 'deadline fired' line at INFO:\n" + worker.log_text(),
        )
        return
    levels = Counter(line["level"] for line in _lines(worker.log_text()))
    assert levels["info"] == 0 and levels["debug"] == 0, worker.log_text()
    assert levels["warning"] >= 1, worker.log_text()
