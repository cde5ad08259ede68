"""The store's global indexes, walked over every shard (one shard on one Redis, 64 in a
Redis Cluster with --redis-cluster): arming in batches, the outbox relay and its confirm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.adapters.redis_store import RedisStore
from worker.rules.state import Deadline, OrderState
from worker.service_layer.ports import Commit

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORDERS = [f"o-shard-{n}" for n in range(12)]
"""Twelve orders: in a cluster they land in (almost surely) different shards and nodes."""


def commit(store: RedisStore, order: str, outbox: bool = False) -> None:
    deadline = Deadline(kind="unpaid_expiry", due_at=NOW + timedelta(seconds=30))
    entries = ((f"entry-{order}", {"kind": "task", "name": "t", "args": [order]}),)
    result = store.commit(
        Commit(
            order_id=order,
            expected_version=0,
            state=OrderState(order_id=order),
            schedule=(deadline,),
            outbox=entries if outbox else (),
        ),
        NOW,
    )
    assert result.status == "ok"


@pytest.fixture
def store(redis_client) -> RedisStore:
    return RedisStore(redis_client)


def test_arming_walks_every_shard_within_its_batch_limit(store):
    for order in ORDERS:
        commit(store, order)
    shards = {store.keys.shard_of(order) for order in ORDERS}
    assert len(shards) == 1 if store.keys.shards == 1 else len(shards) > 6
    assert store.schedule_size() == (len(ORDERS), 0)

    first = store.arm_due(NOW + timedelta(minutes=1), limit=5, recheck_after=2.0)
    rest = store.arm_due(NOW + timedelta(minutes=1), limit=100, recheck_after=2.0)

    assert len(first) == 5
    assert sorted(order for order, _, _ in first + rest) == sorted(ORDERS)
    assert store.schedule_size() == (0, len(ORDERS))
    assert {row[0] for row in store.next_deadlines(100)} == set(ORDERS)


def test_the_relay_finds_unconfirmed_entries_in_every_shard_and_confirm_removes_them(
    store, redis_client
):
    for order in ORDERS:
        commit(store, order, outbox=True)
    later = NOW + timedelta(seconds=10)
    stale = store.stale_outbox(later, limit=100)
    assert sorted(entry_id for entry_id, _ in stale) == sorted(f"entry-{o}" for o in ORDERS)

    store.confirm_published([f"entry-{order}" for order in ORDERS[:6]])  # remembered shards
    # Another process never saw the others: it finds them wherever they are.
    RedisStore(redis_client).confirm_published([f"entry-{order}" for order in ORDERS[6:]])

    assert store.stale_outbox(later, limit=100) == []
