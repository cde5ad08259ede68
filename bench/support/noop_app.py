"""The bare baseline for bench/throughput.py: one Celery no-op task, the real worker's settings.

The settings are read from worker/celery.py's `app.conf` itself (serializers, late acks,
reject on worker lost, prefetch multiplier 1, task events on, sent and started events,
the visibility timeout), so the baseline cannot drift from the worker it is compared with.
The transport is the worker's own reliable fetch (worker.shell.transport:Transport), because
every deployment of the worker on Redis pays for it; BENCH_NOOP_TRANSPORT=stock uses
kombu's stock Redis transport instead (reported for information). The consumer class is
Celery's stock one: screening inbound messages (worker/shell/consumer.py) is the worker's own
per-message work, so it is counted against the worker, not hidden in the baseline.

    BENCH_BROKER_URL=redis://... PYTHONPATH=bench/support python -m celery -A noop_app worker
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench.noop"
TASK = "bench.noop"
# What the worker's app.conf decides per message, copied as is.
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


def _worker_conf() -> dict[str, Any]:
    os.environ.setdefault("AFTERSALES_REDIS_URL", BROKER_URL)
    from worker.celery import app as worker_app  # reads AFTERSALES_* like the worker

    conf = {key: worker_app.conf[key] for key in SHARED}
    if os.environ.get("BENCH_NOOP_TRANSPORT", "ours") == "ours":
        conf["broker_transport"] = worker_app.conf.broker_transport
    return conf


app = Celery("noop", broker=BROKER_URL)
app.conf.update(_worker_conf(), task_default_queue=QUEUE)


@app.task(name=TASK)
def noop(*args: Any, **kwargs: Any) -> None:
    """Takes the same message body as the worker's tasks, and does nothing with it."""
