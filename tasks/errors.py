"""One error hierarchy: permanent errors dead-letter at once,
transient ones retry with capped, jittered backoff."""

from __future__ import annotations

import random

import redis
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from schemas.formats import NewerFormat
from worker.logging import get_logger
from worker.service_layer.service import ConcurrencyExhausted

log = get_logger("aftersales.tasks")

TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OperationalError,
    ConcurrencyExhausted,
    ConnectionError,
    TimeoutError,
    # Stored data a newer release wrote (an order state in a newer format): left as it is
    # and tried again, by then perhaps on a newer worker (schemas/formats.py).
    NewerFormat,
)
"""Failures of the infrastructure, or data for a newer release, not of the message:
retried, never dead-lettered."""

BACKOFF_CAP = 60.0
"""Longest wait between retries (s): a Redis restart takes seconds, not minutes."""


def backoff(retries: int) -> float:
    """Full-jitter exponential backoff: 0.5 s, 1 s, 2 s ... capped."""
    return random.uniform(0, min(BACKOFF_CAP, 0.5 * 2**retries))


REPUBLISH_POLICY = {
    "max_retries": 40,
    "interval_start": 0.5,
    "interval_step": 0.5,
    "interval_max": 2.0,
}
"""How long a retry's copy keeps trying to reach the broker (about 75 s): longer than a
Redis restart with its AOF load. Celery's default gives up after about 1 s, and then the
original message would be acked without a copy (retry_later)."""


def retry_later(task: Task, exc: Exception) -> Exception:
    """Retry a message that met a transient failure, without ever losing it.

    Celery's retry publishes a copy of the message, then acks the original. When the copy
    cannot be published (Redis still down or loading its AOF after a restart), Celery
    raises Reject(requeue=False) and the worker acks the original anyway: the message is
    gone (docs/chaos.md, finding 6). So the copy waits out a restart
    (REPUBLISH_POLICY), and if it still cannot be published the original is requeued
    instead; if even that fails, the transport keeps it held and gives it back."""
    try:
        retry: Exception = task.retry(
            exc=exc, countdown=backoff(task.request.retries), retry_policy=REPUBLISH_POLICY
        )
        return retry  # not reached: retry raises Retry once the copy is published
    except Reject as unpublished:
        log.warning("retry could not be published; message requeued", error=str(unpublished.reason))
        requeue: Exception = Reject(unpublished.reason, requeue=True)
        return requeue
