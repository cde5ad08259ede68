"""The client of the state store: one Redis, or a Redis Cluster (docs/cluster.md).

The one place that chooses; the store (redis_store.py) takes either and picks the
keyspace that goes with it.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from worker.adapters.shards import StateClient
from worker.settings import Settings

CLUSTER_RETRIES = 12
"""Attempts of one command after a connection error, CLUSTER DOWN or an uncovered slot,
each after re-reading the slot map. With the backoff below they span about 8 s: a
failover (cluster-node-timeout plus an election, a few seconds) is waited out inside one
call; a longer outage reaches the task, which retries it (tasks/errors.py)."""
CLUSTER_BACKOFF = ExponentialWithJitterBackoff(cap=1.0, base=0.05)
"""50 ms, doubling, at most 1 s, jittered so that workers do not retry in step."""


def connect(settings: Settings) -> StateClient:
    if settings.redis_cluster:
        # MOVED and ASK redirections are followed without counting as retries.
        return RedisCluster.from_url(
            settings.redis_url,
            retry=Retry(CLUSTER_BACKOFF, CLUSTER_RETRIES),
            health_check_interval=30,
        )
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)
