"""The naive baseline for bench/deadlines.py: one plain Celery ETA task per deadline.

Same broker (Redis), same serializer and ack settings as the real worker (JSON, late
acks, reject on worker loss, prefetch multiplier 1), kombu's default visibility timeout
(1 h) unless BENCH_VISIBILITY_TIMEOUT says otherwise. The task does nothing, or, with
`record=True`, appends "<task id> <lateness ms>" to the Redis list `naive:lateness`.

    BENCH_BROKER_URL=redis://... PYTHONPATH=bench/support python -m celery -A naive_app worker
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery import Celery

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = "naive"
LATENESS = "naive:lateness"

app = Celery("naive", broker=BROKER_URL, set_as_current=False)
options: dict[str, Any] = {}
if os.environ.get("BENCH_VISIBILITY_TIMEOUT"):
    options["visibility_timeout"] = float(os.environ["BENCH_VISIBILITY_TIMEOUT"])
    # kombu scans for expired unacked messages every interval x throttle s (100 s by
    # default); scan every second so a short demo shows what a 1 h timeout does to 48 h ETAs.
    options["unacked_restore_interval"] = 1
    options["unacked_restore_throttle"] = 1
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    broker_transport_options=options,
    enable_utc=True,
    timezone="UTC",
)


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(BROKER_URL)


@app.task(name="naive.deadline", bind=True)
def deadline(self: Any, record: bool = False) -> None:
    if not record:
        return
    now = datetime.now(UTC)
    eta = self.request.eta
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    if eta.tzinfo is None:
        eta = eta.replace(tzinfo=UTC)
    _redis().rpush(LATENESS, f"{self.request.id} {(now - eta).total_seconds() * 1000:.1f}")
