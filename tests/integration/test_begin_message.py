"""begin.lua: the one round trip before a message's decision (RedisStore.begin_message)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from tests.support.messages import new_id
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
from worker.rules.state import OrderState
from worker.service_layer.ports import Commit

pytestmark = pytest.mark.integration


def test_claim_duplicate_and_load_in_one_step(state_url: str) -> None:
    client = redis.Redis.from_url(state_url)
    store = RedisStore(client)
    order = new_id("o")

    first = store.begin_message(order, "m-1", "digest-a", "task-1")
    assert first.status == "new" and first.loaded is not None
    assert first.loaded.state is None and first.loaded.version == 0

    state = OrderState(order_id=order)
    commit = Commit(order_id=order, expected_version=0, state=state, message_id="m-1")
    assert store.commit(commit, datetime.now(UTC)).status == "ok"

    client.hset(keys.inflight(order), "task-2", "1 1")
    assert store.begin_message(order, "m-1", "digest-a", "task-2").status == "duplicate"
    assert not client.hexists(keys.inflight(order), "task-2")  # ended with the duplicate
    assert store.begin_message(order, "m-1", "digest-b", "task-3").status == "reused"

    loaded = store.begin_message(order, "m-2", "", "").loaded
    assert loaded is not None and loaded.state == state and loaded.version == 1
    assert not client.hexists(keys.message_digests(order), "m-2")  # no digest: no claim
