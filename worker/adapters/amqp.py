"""RabbitMQ as the broker (`AFTERSALES_BROKER_URL=amqp://...`): the queues and the Celery
options that differ from the Redis broker (docs/operations.md#rabbitmq).

- `aftersales.inbound` is a quorum queue: replicated, durable, and its messages survive a
  node restart. Its exchange and routing key stay those of the contract (direct, named
  after the queue), so producers are unchanged, except that one which declares the queue
  must declare it with `x-queue-type: quorum` (RabbitMQ refuses an inequivalent declare).
- `aftersales.deadlines` and `aftersales.control` stay classic queues: everything in them
  is derived from Redis (an armed deadline lost with its queue is re-sent by the sweep, a
  tick is worthless after 5 s), so replication would buy nothing.
- ETA and countdown tasks use Celery's native delayed delivery (RabbitMQ TTL queues), not
  the worker's memory: with a quorum queue Celery must use per-consumer prefetch, which it
  cannot raise for an unacked ETA task, so a few waiting deadlines would stall the queue for up
  to the arming horizon. Native delayed delivery needs a topic exchange, hence the
  deadlines queue's. Inbound retries (direct exchange, per the contract) still wait
  in memory; they are rare (an outage) and short (backoff capped at 60 s).
- Publisher confirms: a publish returns once RabbitMQ has the message, so an outbox entry
  is removed only for an event the broker really holds.
- Acks stay late. Reliable fetch (worker/shell/transport.py) is not used: RabbitMQ gives an
  unacked message back when the consumer's channel dies, which is the same guarantee.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from kombu.entity import Exchange, Queue

from worker.adapters import topology

SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})

QUORUM = {"x-queue-type": "quorum"}
"""The declare argument a producer that declares `aftersales.inbound` must pass."""

inbound_queue = Queue(
    topology.INBOUND,
    topology.inbound_queue.exchange,
    routing_key=topology.INBOUND,
    durable=True,
    queue_arguments=QUORUM,
)
# Topic, not direct: Celery's native delayed delivery routes only through topic exchanges.
deadlines_exchange = Exchange(topology.DEADLINES, type="topic", durable=True)
deadlines_queue = Queue(topology.DEADLINES, deadlines_exchange, routing_key=topology.DEADLINES)

CONSUMED = (inbound_queue, deadlines_queue, topology.control_queue)
"""What a worker consumes when the broker is RabbitMQ (topology.CONSUMED otherwise)."""

MIN_NATIVE_DELAY = 1.0
"""Native delayed delivery counts whole seconds and refuses a delay under one (kombu's
calculate_routing_key); a shorter wait is sent as one second."""


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def celery_options() -> dict[str, Any]:
    """What worker/celery.py adds to its configuration for an AMQP broker."""
    return {
        "task_queues": CONSUMED,
        # Producers of ours (the scheduler's barrier, replay) declare inbound as it is.
        "task_create_missing_queue_type": "quorum",
        "broker_transport_options": {"confirm_publish": True},
        # The delay queues hold only armed deadlines and retries, all re-sent from Redis
        # or by the sweep if lost: classic is enough, and 28 fewer Raft groups per vhost.
        "broker_native_delayed_delivery_queue_type": "classic",
    }


class AmqpCelery(Celery):  # type: ignore[misc]  # Celery is untyped
    """The app for an AMQP broker: a positive delay under one second (a countdown, or an
    ETA that close) is sent as one second, which native delayed delivery can carry; Celery
    would raise instead. Such waits are rare: the 0.25 s re-check of a firing behind an
    in-flight message, a deadline armed less than a second before it is due."""

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: float | None = None,
        eta: datetime | str | None = None,
        *more: Any,
        **options: Any,
    ) -> Any:
        if 0 < _delay(countdown, eta, self.now()) < MIN_NATIVE_DELAY:
            countdown, eta = MIN_NATIVE_DELAY, None
        return super().send_task(name, args, kwargs, countdown, eta, *more, **options)


def _delay(countdown: float | None, eta: datetime | str | None, now: datetime) -> float:
    if countdown is not None:
        return float(countdown)
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    if eta is None:
        return 0.0
    if eta.tzinfo is None:  # Celery reads a naive ETA as UTC (enable_utc)
        eta = eta.replace(tzinfo=UTC)
    return (eta - now).total_seconds()
