"""What every part of the Redis store shares: the client, the keyspace, the shard walk.

The store is cut by concern (order_store.py, inflight_store.py, schedule_store.py,
outbox_store.py), each a class over this base; `RedisStore` (redis_store.py) puts them
together on one client, the way redis-py builds `Redis` from its command mixins. Each
part registers its own Lua scripts in its `__init__`; they chain to this one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

from redis.cluster import RedisCluster

from worker.adapters import keys
from worker.adapters.direct_publish import DirectEvents
from worker.adapters.shards import OutboxShards, StateClient


def script(name: str) -> str:
    """The text of one of the store's Lua scripts (beside this module)."""
    return resources.files("worker.adapters").joinpath(name).read_text()


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def text(value: bytes | str) -> str:
    """A key, member or field as text: bytes from our clients (no decode_responses)."""
    return value.decode() if isinstance(value, bytes) else value


def ms(span: timedelta) -> int:
    """A TTL in milliseconds, at least 1 (PEXPIRE 0 would delete the key at once)."""
    return max(1, round(span.total_seconds() * 1000))


class StoreBase:
    def __init__(
        self,
        client: StateClient,
        direct: DirectEvents | None = None,
        keyspace: keys.Keyspace | None = None,
    ) -> None:
        self.client = client
        # Set when the broker is this Redis: events are pushed to their queues by the commit.
        self.direct = direct
        clustered = isinstance(client, RedisCluster)
        self.keys = keyspace or (keys.CLUSTER if clustered else keys.SINGLE)
        # Which shard an outbox entry went to: written by the commit and the relay's read,
        # read by the confirm.
        self._outbox = OutboxShards(self.keys)
        self._first_shard = 0  # each walk starts one shard further: no shard always last

    def _walk(self) -> list[int]:
        """Every shard once, starting one further each walk, so that a batch limit reached
        before the last shard does not always leave the same shards for the next tick."""
        count = self.keys.shards
        first, self._first_shard = self._first_shard, (self._first_shard + 1) % count
        return [(first + step) % count for step in range(count)]
