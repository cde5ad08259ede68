"""When the worker first knew each deadline (`Deadline.known_at`, 1.2) is stored beside the
order's state, in the hash's `known` field, never in the `state` field, which release 1.1
reads and whose models refuse keys they do not know (worker/adapters/state_codec.py). A
real worker commits; Redis holds what each release reads; a state rewritten as a 1.1
worker writes it (the `known` field left beside it) loads with only what still holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.state import wait_applied
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration


def test_known_at_is_kept_beside_the_state_where_1_1_does_not_look(
    start_worker, wire_client, redis_client
):
    order = new_id("o")
    store = RedisStore(redis_client)
    key = store.keys.order_state(order)
    start_worker(concurrency=1)
    before = datetime.now(UTC)
    wire_client.send(ORDER_EVENT, placed(order, before - timedelta(minutes=5)))  # unpaid
    wait_applied(redis_client, order, 1)

    state_field, known_field = redis_client.hmget(key, ["state", "known"])
    assert b"known_at" not in state_field  # what 1.1 reads: no key it refuses
    deadlines = json.loads(state_field)["deadlines"]
    known = json.loads(known_field)["d"]
    assert known and set(known) <= set(deadlines)
    loaded = store.load(order).state
    assert loaded is not None
    for deadline_id, (due_at, known_at) in known.items():
        assert deadlines[deadline_id]["due_at"] == due_at
        assert loaded.deadlines[deadline_id].known_at == datetime.fromisoformat(known_at)
        assert (
            before - timedelta(seconds=5) <= datetime.fromisoformat(known_at) <= datetime.now(UTC)
        )

    # A 1.1 worker commits the order meanwhile: it writes `state` and `version` only; the
    # `known` left beside it holds for a deadline still at its due time, not for one moved.
    (deadline_id,) = known  # an unpaid order: its expiry
    redis_client.hset(key, "state", state_field)
    again = store.load(order).state
    assert again is not None and again.deadlines == loaded.deadlines
    rewritten = json.loads(state_field)
    later = datetime.fromisoformat(deadlines[deadline_id]["due_at"]) + timedelta(hours=1)
    rewritten["deadlines"][deadline_id]["due_at"] = later.isoformat().replace("+00:00", "Z")
    redis_client.hset(key, "state", json.dumps(rewritten))
    moved = store.load(order).state
    assert moved is not None and moved.deadlines[deadline_id].due_at == later
    assert moved.deadlines[deadline_id].known_at is None  # unknown: lateness from the due time

    # Cancelled in its free hour: no deadline left, and the `known` field goes with them.
    wire_client.send(
        BUYER_ACTION,
        message("buyer.cancel_requested", order, datetime.now(UTC), reason="changed mind"),
    )
    wait_until(
        lambda: not (store.load(order).state or loaded).deadlines,
        30,
        "the order kept deadlines after its cancellation",
    )
    assert redis_client.hget(key, "known") is None
