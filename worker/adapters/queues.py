"""The two ways to read the queues a deadline firing must look at (ports.BacklogReader).

worker/runtime.py chooses one, once: the broker is the store's own Redis (kombu's lists,
read with the order in one round trip), or another broker (RabbitMQ, or Redis on another
database), asked by a passive declare.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from worker.adapters import topology
from worker.adapters.redis_store import RedisStore
from worker.service_layer.backlog import queue_keys
from worker.service_layer.ports import Backlog, Loaded

INBOUND_KEYS = queue_keys(topology.INBOUND)


class RedisQueues:
    """The queues are kombu's lists on the store's Redis."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def load_with_backlog(self, order_id: str) -> tuple[Loaded, Backlog | None]:
        return self.store.load_for_firing(order_id, INBOUND_KEYS)

    def load_many_with_backlog(self, order_ids: Sequence[str]) -> list[tuple[Loaded, Backlog]]:
        return self.store.load_many_for_firing(order_ids, INBOUND_KEYS)

    def backlog(self, order_id: str) -> Backlog:
        return self.store.backlog(order_id, INBOUND_KEYS)

    def queued(self, queue: str) -> int:
        return self.store.queue_depth(queue_keys(queue))


class BrokerQueues:
    """The queues live in another broker: their depth comes from the broker itself."""

    def __init__(self, app: Celery, store: RedisStore) -> None:
        self.app = app
        self.store = store

    def load_with_backlog(self, order_id: str) -> tuple[Loaded, Backlog | None]:
        return self.store.load(order_id), None  # the gate calls `backlog` if it must

    def load_many_with_backlog(self, order_ids: Sequence[str]) -> list[tuple[Loaded, Backlog]]:
        # The orders and their in-flight entries in one round trip, then the depth once
        # from the broker: read after the orders, as a single firing's gate does.
        rows = self.store.load_many_for_firing(order_ids, [])
        depth = self.queued(topology.INBOUND)
        return [(loaded, (depth, inflight)) for loaded, (_, inflight) in rows]

    def backlog(self, order_id: str) -> Backlog:
        return self.queued(topology.INBOUND), self.store.inflight(order_id)

    def queued(self, queue: str) -> int:
        # A channel of its own: a refused passive declare closes it (AMQP).
        with self.app.pool.acquire(block=True) as connection, connection.channel() as channel:
            try:
                return int(channel.queue_declare(queue, passive=True).message_count)
            except connection.channel_errors:  # no such queue (a flushed broker): none wait
                return 0
