"""The baselines of bench/throughput.py: a Celery no-op task, and a task that relays its message.

Two modes (`BENCH_NOOP_MODE`):

- `stock` (default): what a user would otherwise run. A plain Celery app on kombu's own
  Redis transport with Celery's defaults plus the two settings everyone sets for safety,
  `task_acks_late=True` and `task_reject_on_worker_lost=True`: default prefetch (4 per
  process), no task events (a monitor turns them on when it wants them), JSON (Celery's
  default serializer).
- `same`: the worker's own settings, read from worker/celery.py's `app.conf` itself
  (serializers, late acks, reject on worker lost, prefetch, task events, the visibility
  timeout) and its reliable-fetch transport (worker.shell.transport:Transport), so the
  baseline cannot drift from the worker it is compared with. The consumer class is
  Celery's stock one: screening inbound messages (worker/shell/consumer.py) is the worker's
  own per-message work, so it is counted against the worker, not hidden in the baseline.

`bench.relay` is the stock latency baseline: a task that publishes its message (the order
id and type) to the queue `bench.relay`, which a stock kombu consumer reads.

    BENCH_BROKER_URL=redis://... PYTHONPATH=bench/support python -m celery -A noop_app worker
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench.noop"
TASK = "bench.noop"
RELAY_TASK = "bench.relay"
RELAY_EXCHANGE = Exchange("bench.relay", type="direct", durable=True)
RELAY_QUEUE = Queue("bench.relay", RELAY_EXCHANGE, routing_key="bench.relay")
# What the worker's app.conf decides per message, copied as is (mode `same`).
SHARED = (
    "task_serializer",
    "result_serializer",
    "accept_content",
    "event_serializer",
    "result_accept_content",
    "result_backend",
    "task_ignore_result",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "worker_prefetch_multiplier",
    "worker_send_task_events",
    "task_send_sent_event",
    "task_track_started",
    "enable_utc",
    "timezone",
    "broker_transport_options",
    "broker_connection_retry_on_startup",
    "worker_hijack_root_logger",
)
STOCK = {"task_acks_late": True, "task_reject_on_worker_lost": True}
"""Celery's defaults plus the two safety settings."""


def _worker_conf() -> dict[str, Any]:
    os.environ.setdefault("AFTERSALES_REDIS_URL", BROKER_URL)
    from worker.celery import app as worker_app  # reads AFTERSALES_* like the worker

    conf = {key: worker_app.conf[key] for key in SHARED}
    conf["broker_transport"] = worker_app.conf.broker_transport
    return conf


MODE = os.environ.get("BENCH_NOOP_MODE", "stock")
app = Celery("noop", broker=BROKER_URL)
app.conf.update(_worker_conf() if MODE == "same" else STOCK, task_default_queue=QUEUE)


@app.task(name=TASK)
def noop(*args: Any, **kwargs: Any) -> None:
    """Takes the same message body as the worker's tasks, and does nothing with it."""


@app.task(name=RELAY_TASK)
def relay(body: dict[str, Any]) -> None:
    """Publishes the message's order id and type to `bench.relay`, as a stock task would."""
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish(
            {"subject": body.get("order_id"), "type": body.get("type")},
            exchange=RELAY_EXCHANGE,
            routing_key="bench.relay",
            serializer="json",
            declare=[RELAY_QUEUE],
        )
