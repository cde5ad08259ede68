"""Wiring: the real adapters behind the service, built lazily once per process.

Built after the prefork pool forks (first use in a child), so no Redis connection is
shared across processes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis

from worker.adapters.publisher import KombuPublisher
from worker.adapters.redis_store import RedisStore
from worker.app import app
from worker.service import Service, dead_letter_body, utcnow

__all__ = ["dead_letter", "publisher", "redis_client", "service", "store", "utcnow"]
from worker.settings import get_settings


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, health_check_interval=30)


@lru_cache(maxsize=1)
def store() -> RedisStore:
    return RedisStore(redis_client())


@lru_cache(maxsize=1)
def publisher() -> KombuPublisher:
    return KombuPublisher(app)


@lru_cache(maxsize=1)
def service() -> Service:
    settings = get_settings()
    return Service(store(), publisher(), settings.policy, hold_for=settings.hold_for)


def dead_letter(
    task: str | None,
    original: Any,
    error: str,
    reason: str,
    errors: list[dict[str, Any]] | None = None,
    content_type: str | None = None,
) -> None:
    """Publish straight to the dead-letter queue (nothing was committed for this input)."""
    body = dead_letter_body(task, original, error, reason, utcnow(), errors, content_type)
    publisher().publish_dead_letter(body)
