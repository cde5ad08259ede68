"""A real prefork worker and a real beat serve /metrics: counters summed over the pool's
children, the figures read from Redis at scrape time, beat on the next port."""

from __future__ import annotations

import pytest

from tests.observability.scraping import free_port_pair, reachable, scrape, text, value
from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

FAST = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}


def test_worker_and_beat_serve_what_happened(start_worker, start_beat, wire_client):
    port = free_port_pair()
    env = {**FAST, "AFTERSALES_METRICS_PORT": str(port), "AFTERSALES_METRICS_ADDRESS": "127.0.0.1"}
    start_worker(concurrency=2, env=env)
    start_beat(env=env)
    wait_until(lambda: reachable(port) and reachable(port + 1), 30, "no /metrics endpoints")

    # Given five new unpaid orders (a deadline each, due in 48 h), one sent twice, one
    # order placed 49 h ago (its expiry already past due on arrival) and one invalid message
    orders = [new_id("o") for _ in range(5)]
    bodies = [placed(order, ago(minutes=1)) for order in orders]
    for body in bodies:
        wire_client.send(ORDER_EVENT, body)
    wire_client.send(ORDER_EVENT, bodies[0])
    late = new_id("o")
    wire_client.send(ORDER_EVENT, placed(late, ago(hours=49)))
    wire_client.send(ORDER_EVENT, message("order.paid", "", ago(minutes=1)))  # empty order id

    # Then the worker's endpoint counts each result, summed over its two processes
    def counted() -> bool:
        samples = scrape(port)
        return (
            value(samples, "aftersales_messages_total", result="applied") == 6
            and value(samples, "aftersales_messages_total", result="duplicate") == 1
            and value(samples, "aftersales_messages_total", result="dead_lettered") == 1
            and value(samples, "aftersales_deadline_lateness_seconds_count", kind="unpaid_expiry")
            == 1
        )

    wait_until(counted, 60, lambda: f"metrics never added up: {scrape(port)}")
    samples = scrape(port)
    assert value(samples, "aftersales_dead_letters_total", reason="invalid_message") == 1
    assert value(samples, "aftersales_deadline_backdated_total", kind="unpaid_expiry") == 1
    backdated = value(samples, "aftersales_deadline_backdated_seconds_total")
    assert 3600 - 60 < backdated < 3600 + 60  # due 48 h after a placement 49 h ago
    # the day-old backdating is not lateness: it fired within seconds of its arrival
    assert value(samples, "aftersales_deadline_lateness_seconds_bucket", le="10.0") == 1
    assert value(samples, "aftersales_events_total", type="order.cancelled") == 1
    assert (
        value(samples, "aftersales_deadlines_fired_total", kind="unpaid_expiry", result="applied")
        == 1
    )
    assert value(samples, "aftersales_deadlines_pending") == 5
    assert value(samples, "aftersales_deadlines_overdue") == 0
    assert value(samples, "aftersales_queue_messages", queue="aftersales.dead_letter") == 1
    assert value(samples, "aftersales_dependency_up", dependency="redis") == 1
    assert value(samples, "aftersales_worker_last_fetch_timestamp_seconds") > 0
    assert value(samples, "aftersales_task_duration_seconds_count", task=ORDER_EVENT) == 8
    # And beat serves its own tick and the same figures on the next port
    wait_until(
        lambda: value(scrape(port + 1), "aftersales_beat_last_tick_sent_timestamp_seconds") > 0,
        30,
        "beat never recorded its tick",
    )
    # no order id, message id or connection URL on either page
    pages = text(port) + text(port + 1)
    assert not [order for order in [*orders, late] if order in pages]
    assert not [body["message_id"] for body in bodies if body["message_id"] in pages]
    assert "redis://" not in pages and "amqp://" not in pages
    beat = scrape(port + 1)
    assert value(beat, "aftersales_deadlines_pending") == 5
    assert value(beat, "aftersales_beat_last_tick_timestamp_seconds") > 0
