"""Wiring: the real adapters behind the service and the scheduler, built lazily once per
process, and the one place that chooses between them.

Built after the prefork pool forks (first use in a child), so no Redis connection is
shared across processes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis

from schemas.dead_letters import DeadLetterReason, dead_letter_body
from worker.adapters.direct_publish import DirectEvents
from worker.adapters.label_store import FileLabelStore
from worker.adapters.publisher import KombuPublisher
from worker.adapters.queues import BrokerQueues, RedisQueues
from worker.adapters.redis_store import RedisStore
from worker.adapters.shards import StateClient
from worker.adapters.state_client import connect
from worker.celery import app
from worker.service_layer.ports import BacklogReader
from worker.service_layer.scheduler import Scheduler
from worker.service_layer.service import Service, utcnow
from worker.settings import get_settings

__all__ = [
    "app",
    "dead_letter",
    "label_store",
    "publisher",
    "queues",
    "redis_client",
    "scheduler",
    "service",
    "store",
    "utcnow",
]


@lru_cache(maxsize=1)
def redis_client() -> StateClient:
    return connect(get_settings())


@lru_cache(maxsize=1)
def store() -> RedisStore:
    """Events are pushed to their queues by the commit itself when the broker is this same
    Redis (worker/adapters/direct_publish.py); else the publisher sends them after it."""
    settings = get_settings()
    client = redis_client()
    direct = None
    if settings.broker_url == settings.redis_url and isinstance(client, redis.Redis):
        direct = DirectEvents(client)
    return RedisStore(client, direct=direct)


@lru_cache(maxsize=1)
def publisher() -> KombuPublisher:
    return KombuPublisher(app)


@lru_cache(maxsize=1)
def service() -> Service:
    settings = get_settings()
    return Service(
        store(),
        publisher(),
        settings.policy,
        hold_for=settings.hold_for,
        retention=settings.retention,
        tombstone=settings.tombstone_retention,
    )


@lru_cache(maxsize=1)
def queues() -> BacklogReader:
    """Queue depths from the store's Redis when the broker is that same Redis (one round
    trip with the order), else from the broker itself (always with a Redis Cluster)."""
    settings = get_settings()
    if settings.broker_url == settings.redis_url and not settings.redis_cluster:
        return RedisQueues(store())
    return BrokerQueues(app, store())


@lru_cache(maxsize=1)
def scheduler() -> Scheduler:
    return Scheduler(
        schedule=store(),
        outbox=store(),
        service=service(),
        queues=queues(),
        send_task=app.send_task,
        settings=get_settings(),
        clock=utcnow,
    )


@lru_cache(maxsize=1)
def label_store() -> FileLabelStore:
    """Where label files go: swap the store here (docs/labels.md), not in the task."""
    return FileLabelStore(get_settings().label_dir)


def dead_letter(
    task: str | None,
    original: Any,
    error: str,
    reason: DeadLetterReason,
    errors: list[dict[str, Any]] | None = None,
    content_type: str | None = None,
) -> None:
    """Publish straight to the dead-letter queue (nothing was committed for this input)."""
    body = dead_letter_body(task, original, error, reason, utcnow(), errors, content_type)
    publisher().publish_dead_letter(body)
