"""The sample names the worker really exports: the in-process families of
worker/observability/metrics.py (as their samples are named), and what the scrape-time
collector yields when run against a real Redis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import redis

from worker.adapters.figures import record_tick
from worker.adapters.redis_store import RedisStore

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class NoQueues:
    def queued(self, queue: str) -> int:
        return 0


def exported_names(client: redis.Redis) -> set[str]:
    from prometheus_client.metrics import MetricWrapperBase

    from worker.observability import metrics
    from worker.observability.scrape import StateCollector

    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    store = RedisStore(client)
    record_tick(store, datetime.now(UTC))  # the tick's gauge appears once a tick has run
    collector = StateCollector(lambda: (store, NoQueues()), timedelta(seconds=1))  # type: ignore[arg-type]
    for family in collector.collect():
        names |= {sample.name for sample in family.samples}
    return names


def names_in(query: str) -> set[str]:
    """The aftersales_ metric names a PromQL expression reads."""
    return set(re.findall(r"\baftersales_[a-z_]+\b", query))
