"""worker/adapters/amqp.py: what changes when the broker is RabbitMQ
(docs/operations.md#rabbitmq)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.adapters import amqp

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_only_amqp_urls_select_rabbitmq() -> None:
    assert amqp.is_amqp("amqp://guest:guest@rabbit:5672//")
    assert amqp.is_amqp("amqps://rabbit/aftersales")
    assert not amqp.is_amqp("redis://127.0.0.1:6379/0")
    assert not amqp.is_amqp("rediss://redis:6380/0")


def test_the_inbound_queue_is_quorum_and_publishes_are_confirmed() -> None:
    options = amqp.celery_options()
    (inbound,) = [queue for queue in options["task_queues"] if queue.name == "aftersales.inbound"]
    assert inbound.queue_arguments == {"x-queue-type": "quorum"}
    assert inbound.exchange.type == "direct"  # the contract's routing is unchanged
    (deadlines,) = [q for q in options["task_queues"] if q.name == "aftersales.deadlines"]
    assert deadlines.exchange.type == "topic"  # native delayed delivery needs it
    assert not deadlines.queue_arguments
    assert options["broker_transport_options"] == {"confirm_publish": True}


def test_a_delay_is_read_from_a_countdown_or_an_eta() -> None:
    assert amqp._delay(0.25, None, NOW) == 0.25
    assert amqp._delay(None, NOW + timedelta(seconds=0.5), NOW) == 0.5
    assert amqp._delay(None, (NOW + timedelta(seconds=3)).isoformat(), NOW) == 3.0
    assert amqp._delay(None, NOW.replace(tzinfo=None) - timedelta(seconds=1), NOW) == -1.0
    assert amqp._delay(None, None, NOW) == 0.0
