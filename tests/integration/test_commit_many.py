"""A batch's commits (RedisStore.commit_many, worker/adapters/order_store.py) against a real
Redis: one pipeline of bare EVALSHA, no SCRIPT EXISTS round trip before it, and a script
cache emptied under it (a Redis restart, SCRIPT FLUSH) still commits each order once."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.integration.test_batch_firing import place_unpaid_burst
from worker.adapters.redis_store import RedisStore
from worker.service_layer.service import Firing, Service
from worker.settings import load_policy

pytestmark = pytest.mark.integration


class _Collect:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        self.sent.append(entry)


def _script_calls(client: redis.Redis) -> int:
    """SCRIPT commands (EXISTS, LOAD) Redis ran since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return sum(
        int(row["calls"]) for name, row in stats.items() if name.startswith("cmdstat_script")
    )


def _evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def _fire(client: redis.Redis, orders: list[str]) -> tuple[list[str], _Collect]:
    store, publisher = RedisStore(client), _Collect()
    service = Service(store, publisher, load_policy(None))
    firings = []
    for order_id in orders:
        loaded = store.load(order_id)
        assert loaded.state is not None
        (deadline,) = loaded.state.deadlines.values()
        firings.append(Firing(order_id, deadline, loaded))
    return [outcome.status for outcome in service.fire_many(firings)], publisher


def _cancelled(publisher: _Collect) -> list[str]:
    return sorted(
        entry["event"]["subject"]
        for entry in publisher.sent
        if entry.get("kind") == "event" and entry["event"]["type"] == "order.cancelled"
    )


@pytest.mark.parametrize("batch", [1, 7])
def test_a_batch_commits_without_asking_for_its_script_first(redis_client, batch) -> None:
    orders = place_unpaid_burst(redis_client, batch * 2, due_in=-1, spread=0.5)
    _fire(redis_client, orders[:batch])  # the script is in Redis's cache now
    redis_client.config_resetstat()

    statuses, publisher = _fire(redis_client, orders[batch:])

    assert statuses == ["applied"] * batch
    assert _script_calls(redis_client) == 0  # no SCRIPT EXISTS, no SCRIPT LOAD
    assert _evalsha_calls(redis_client) == batch
    assert _cancelled(publisher) == sorted(orders[batch:])


def test_a_batch_after_the_script_cache_was_flushed_commits_each_order_once(
    redis_client,
) -> None:
    orders = place_unpaid_burst(redis_client, 6, due_in=-1, spread=0.5)
    redis_client.script_flush()
    redis_client.config_resetstat()

    statuses, publisher = _fire(redis_client, orders)

    assert statuses == ["applied"] * len(orders)
    assert _script_calls(redis_client) == 1  # one SCRIPT LOAD for the whole batch
    # each EVALSHA twice: NOSCRIPT (nothing done), then once loaded
    assert _evalsha_calls(redis_client) == 2 * len(orders)
    assert _cancelled(publisher) == sorted(orders)  # each order's event once
    store = RedisStore(redis_client)
    for order_id in orders:  # placed, then fired once: version 2, no deadline left
        loaded = store.load(order_id)
        assert loaded.version == 2
        assert loaded.state is not None and not loaded.state.deadlines
