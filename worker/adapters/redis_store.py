"""The Redis store: order state, in-flight messages, the deadline schedule and the outbox,
on one client (one Redis, or a Redis Cluster: docs/cluster.md).

One class per concern, put together here the way redis-py builds `Redis` from its
command mixins:

- order_store.py: load, begin a message, the atomic commit (commit.lua), the timeline;
- inflight_store.py: in-flight messages and queue depth (the backlog gate's reads);
- schedule_store.py: arming, the sweep, deadline claims and heartbeats, operator reads;
- outbox_store.py: confirming published entries, the relay's read of stale ones.

The keyspace (keys.py) puts an order's keys in its shard's slot, and the methods over
global indexes walk the shards (store_base.py).
"""

from __future__ import annotations

from worker.adapters.inflight_store import InflightStore
from worker.adapters.order_store import OrderStore
from worker.adapters.outbox_store import OutboxStore
from worker.adapters.schedule_store import ScheduleStore


class RedisStore(OrderStore, InflightStore, ScheduleStore, OutboxStore):
    """Every part of the store on one client: what worker/runtime.py wires."""


__all__ = ["RedisStore"]
