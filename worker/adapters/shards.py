"""Helpers of the Redis store for the sharded global indexes (docs/cluster.md).

`gone_claimants`: which claimants of one shard's deadlines have stopped beating, read before the
sweep script (an alive key lives in its own hash slot, so the script cannot read it).
`OutboxShards`: which shard an outbox entry id lives in, so a confirmed publish removes
it from that shard alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis
from redis.cluster import RedisCluster

from worker.adapters import keys

StateClient = redis.Redis | RedisCluster
"""One Redis, or a Redis Cluster (worker/adapters/state_client.py builds either)."""

QUEUE_CLAIMANT = "queue"
"""sweep.lua's claimant for a task presumed waiting in the deadlines queue: no alive key."""

OUTBOX_MEMORY = 100_000
"""Entry ids whose shard a process remembers: far more than it publishes between a
commit and its confirm; beyond it the oldest are forgotten (and looked for everywhere)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gone_claimants(
    client: StateClient,
    armed: str,
    claims: str,
    now: float,
    limit: int,
    alive: dict[str, bool],
) -> list[str] | None:
    """Claimants of the shard's overdue armed deadlines whose alive key has expired; None
    when nothing is overdue (the sweep script need not run). `alive` caches the answers
    over one walk of the shards. A claimant gone stays gone (a restart is a new incarnation),
    so reading this before the script, not inside it, is safe."""
    # without withscores, members only
    overdue = cast(list[bytes | str], client.zrangebyscore(armed, "-inf", now, 0, limit))
    if not overdue:
        return None
    gone = []
    for record in client.hmget(claims, overdue):
        if record is None:
            continue
        who = _text(record).rpartition(" ")[0]
        if not who or who == QUEUE_CLAIMANT:
            continue
        if who not in alive:
            alive[who] = bool(client.exists(keys.alive(who)))
        if not alive[who]:
            gone.append(who)
    return sorted(set(gone))


class OutboxShards:
    """Outbox entry id -> shard, for the ids this process committed or read for relay."""

    def __init__(self, space: keys.Keyspace) -> None:
        self.space = space
        self._shard_of: dict[str, int] = {}

    def remember(self, entry_ids: Iterable[str], shard: int) -> None:
        if not self.space.clustered:
            return
        for entry_id in entry_ids:
            self._shard_of[entry_id] = shard
        while len(self._shard_of) > OUTBOX_MEMORY:  # oldest first (dicts keep order)
            del self._shard_of[next(iter(self._shard_of))]

    def by_shard(self, entry_ids: Iterable[str]) -> dict[int, list[str]]:
        """The ids grouped by shard; an id not remembered is removed from every shard."""
        grouped: dict[int, list[str]] = {}
        for entry_id in entry_ids:
            shard = self._shard_of.pop(entry_id, None) if self.space.clustered else 0
            shards = range(self.space.shards) if shard is None else (shard,)
            for each in shards:
                grouped.setdefault(each, []).append(entry_id)
        return grouped
