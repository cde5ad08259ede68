"""Reading an order's state back from Redis in integration tests (the checking side)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis

from worker.adapters import keys
from worker.adapters.redis_store import RedisStore


def wait_applied(client: redis.Redis, order_id: str, version: int, timeout: float = 30.0) -> None:
    """Wait until `version` inputs of the order are committed (applied or parked).

    Producers in the tests send facts back to back; where an outcome depends on arrival
    order (an outcome already published is not undone by a fact that happened before it
    but arrives after it), a test waits here so that it tests the rule it names.
    """
    store = RedisStore(client)
    end = time.monotonic() + timeout
    while store.load(order_id).version < version:
        assert time.monotonic() < end, f"order {order_id} never reached version {version}"
        time.sleep(0.05)


def paid_order(
    wire_client: Any,
    client: redis.Redis,
    placed_at: datetime,
    paid_at: datetime,
    **placed_fields: Any,
) -> str:
    """A new order, placed and paid, both known to the worker before this returns."""
    from tests.support.messages import ORDER_EVENT, message, new_id, placed

    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, placed_at, **placed_fields))
    wire_client.send(ORDER_EVENT, message("order.paid", order, paid_at))
    wait_applied(client, order, 2)
    return order


def versions(client: redis.Redis, orders: list[str]) -> list[int]:
    """Each order's committed version (0: never committed), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for order in orders:
        pipe.hget(keys.order_state(order), "version")
    return [int(version or 0) for version in pipe.execute()]
