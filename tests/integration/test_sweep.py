"""The sweep re-sends only lost deadline tasks, backing off, against a real Redis (or a
Redis Cluster: the indexes are read in the order's shard)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
from worker.adapters.store_base import epoch

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GRACE, CAP, MAX_CLAIM_AGE = 2.0, 60.0, 300.0


@pytest.fixture
def store(redis_client):
    return RedisStore(redis_client)


def index(store: RedisStore, name: str, order: str) -> str:
    """The key of a global index (`armed`, `claims` ...) that holds this order's entries."""
    key: str = getattr(store.keys, name)(store.keys.shard_of(order))
    return key


def overdue(store: RedisStore, order: str, deadline: str = "unpaid_expiry:") -> str:
    member = keys.deadline_member(order, deadline)
    store.client.zadd(index(store, "armed", order), {member: epoch(NOW - timedelta(seconds=3))})
    return member


def sweep(store: RedisStore, at: datetime = NOW) -> list[tuple[str, str]]:
    return store.lost_armed(at, GRACE, 100, CAP, MAX_CLAIM_AGE)


def test_a_deadline_held_by_a_live_worker_is_left_to_it(store):
    overdue(store, "o-1")
    store.claim("o-1", "unpaid_expiry:", "worker-a@host", NOW - timedelta(seconds=30))
    store.heartbeat("worker-a@host", ttl_ms=5000)

    assert sweep(store) == []
    assert sweep(store, NOW + timedelta(seconds=GRACE)) == []


def test_a_deadline_whose_holder_died_is_sent_again_with_backoff(store):
    member = overdue(store, "o-1")
    store.claim("o-1", "unpaid_expiry:", "worker-dead@host", NOW - timedelta(seconds=30))

    first = sweep(store)
    soon = sweep(store, NOW + timedelta(seconds=GRACE - 0.1))
    second = sweep(store, NOW + timedelta(seconds=GRACE))
    too_soon = sweep(store, NOW + timedelta(seconds=GRACE * 2))
    third = sweep(store, NOW + timedelta(seconds=GRACE + GRACE * 2))

    assert first == [("o-1", "unpaid_expiry:")]
    assert soon == [] and too_soon == []
    assert second == first and third == first
    assert store.client.hget(index(store, "resends", "o-1"), member) == b"3"


def test_an_unheld_or_too_long_held_deadline_is_sent_again(store):
    overdue(store, "o-never-received")
    overdue(store, "o-held-forever")
    store.claim(
        "o-held-forever",
        "unpaid_expiry:",
        "worker-a@host",
        NOW - timedelta(seconds=MAX_CLAIM_AGE + 1),
    )
    store.heartbeat("worker-a@host", ttl_ms=5000)

    assert sorted(sweep(store)) == [
        ("o-held-forever", "unpaid_expiry:"),
        ("o-never-received", "unpaid_expiry:"),
    ]


def test_firing_forgets_the_holder_and_the_resend_count(store):
    from tests.support.factories import order_placed
    from worker.rules.state import OrderState
    from worker.service_layer.ports import Commit

    placed = order_placed()
    member = overdue(store, placed.order_id)
    store.client.hset(index(store, "resends", placed.order_id), member, 2)
    store.claim(placed.order_id, "unpaid_expiry:", "w@h", NOW)
    old = OrderState(order_id=placed.order_id)

    result = store.commit(
        Commit(
            order_id=placed.order_id,
            expected_version=0,
            state=old,
            unschedule=("unpaid_expiry:",),
            lateness_ms=12.5,
        ),
        NOW,
    )

    assert result.status == "ok"
    order = placed.order_id
    assert store.client.hget(index(store, "claims", order), member) is None
    assert store.client.hget(index(store, "resends", order), member) is None
    assert store.client.zscore(index(store, "armed", order), member) is None
    assert store.client.lrange(index(store, "lateness", order), 0, -1) == [b"12.5"]
    assert store.lateness_values() == [12.5]


def test_an_unheld_deadline_behind_a_busy_deadlines_queue_is_left_queued(store):
    """A burst: tasks still queued behind others are not lost; re-sent once it has waited
    longer than a holding may last, or when the queue is empty and nobody has it."""
    member = overdue(store, "o-queued")

    waiting = store.lost_armed(NOW, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=500)
    still = store.lost_armed(
        NOW + timedelta(seconds=GRACE), GRACE, 100, CAP, MAX_CLAIM_AGE, queued=20
    )
    too_long = store.lost_armed(
        NOW + timedelta(seconds=MAX_CLAIM_AGE + 1), GRACE, 100, CAP, MAX_CLAIM_AGE, queued=20
    )

    assert waiting == [] and still == []
    holders = index(store, "claims", "o-queued")
    assert store.client.hget(holders, member) is None  # sent again: nobody holds it
    assert too_long == [("o-queued", "unpaid_expiry:")]
    assert store.client.hget(index(store, "resends", "o-queued"), member) == b"1"


def test_a_queued_deadline_is_sent_again_once_the_queue_is_empty(store):
    overdue(store, "o-queued")
    assert store.lost_armed(NOW, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=3) == []

    later = NOW + timedelta(seconds=GRACE)
    assert store.lost_armed(later, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=0) == [
        ("o-queued", "unpaid_expiry:")
    ]


def test_a_worker_receiving_a_queued_deadline_becomes_its_holder(store):
    overdue(store, "o-queued")
    store.lost_armed(NOW, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=3)
    store.claim("o-queued", "unpaid_expiry:", "worker-a@host", NOW + timedelta(seconds=1))
    store.heartbeat("worker-a@host", ttl_ms=5000)

    later = NOW + timedelta(seconds=GRACE)
    assert store.lost_armed(later, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=0) == []


def test_a_deadline_armed_late_gets_a_grace_period_before_the_sweep_looks_at_it(store):
    """Armed long after its due time (ticks behind a burst): its task was sent just now and
    may not be received yet, so the same tick's sweep must not take it for lost."""
    member = keys.deadline_member("o-late", "unpaid_expiry:")
    store.client.zadd(
        index(store, "schedule", "o-late"), {member: epoch(NOW - timedelta(seconds=30))}
    )

    armed = store.arm_due(NOW + timedelta(seconds=60), 100, recheck_after=GRACE, now=NOW)

    assert [(order, deadline) for order, deadline, _ in armed] == [("o-late", "unpaid_expiry:")]
    assert sweep(store) == []
    assert sweep(store, NOW + timedelta(seconds=GRACE)) == [("o-late", "unpaid_expiry:")]
