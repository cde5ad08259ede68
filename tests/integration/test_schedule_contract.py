"""ports.Schedule, one contract for both implementations: the Redis store (arm.lua,
sweep.lua) and the in-memory schedule the scheduler's unit tests use. Each scenario runs
against both, through the port's methods only (plus what a commit writes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.adapters import keys
from worker.adapters.memory_schedule import InMemorySchedule
from worker.adapters.redis_store import RedisStore
from worker.adapters.store_base import epoch

pytestmark = [pytest.mark.integration, pytest.mark.cluster]  # the Redis side also on a cluster

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GRACE, CAP, MAX_CLAIM_AGE = 2.0, 60.0, 300.0
D = "unpaid_expiry:"


@pytest.fixture(params=["redis", "memory"])
def schedule(request: pytest.FixtureRequest) -> RedisStore | InMemorySchedule:
    if request.param == "memory":
        return InMemorySchedule()  # liveness on the real clock, as Redis's key expiry
    return RedisStore(request.getfixturevalue("redis_client"))


def put(schedule: RedisStore | InMemorySchedule, order: str, due: datetime) -> None:
    """What a commit writes for a new deadline (commit.lua's ZADD to the schedule)."""
    if isinstance(schedule, InMemorySchedule):
        schedule.put(order, D, due)
        return
    shard = schedule.keys.schedule(schedule.keys.shard_of(order))
    schedule.client.zadd(shard, {keys.deadline_member(order, D): epoch(due)})


def armed_overdue(schedule: RedisStore | InMemorySchedule, order: str) -> datetime:
    """`order`'s deadline armed, its re-check due: returns when the sweep may look."""
    put(schedule, order, NOW - timedelta(seconds=5))
    assert schedule.arm_due(NOW, 10, recheck_after=GRACE, now=NOW)
    return NOW + timedelta(seconds=GRACE)


def sweep(schedule: RedisStore | InMemorySchedule, at: datetime, queued: int = 0) -> list:
    return schedule.lost_armed(at, GRACE, 100, CAP, MAX_CLAIM_AGE, queued=queued)


def test_arming_takes_the_deadlines_due_within_the_horizon_once_up_to_the_limit(schedule):
    put(schedule, "o-later", NOW + timedelta(seconds=30))
    put(schedule, "o-due", NOW - timedelta(seconds=1))
    put(schedule, "o-far", NOW + timedelta(hours=2))
    horizon = NOW + timedelta(seconds=60)

    first = schedule.arm_due(horizon, 1, recheck_after=GRACE, now=NOW)
    rest = schedule.arm_due(horizon, 10, recheck_after=GRACE, now=NOW)
    again = schedule.arm_due(horizon, 10, recheck_after=GRACE, now=NOW)

    # Earliest first within a shard; a cluster walks its shards in turn (docs/cluster.md).
    assert len(first) == 1 and again == []
    assert sorted(first + rest) == [
        ("o-due", D, NOW - timedelta(seconds=1)),
        ("o-later", D, NOW + timedelta(seconds=30)),
    ]


def test_a_live_claimant_keeps_a_deadline_and_a_gone_one_loses_it_with_backoff(schedule):
    at = armed_overdue(schedule, "o-live")
    put(schedule, "o-gone", NOW - timedelta(seconds=5))
    schedule.arm_due(NOW, 10, recheck_after=GRACE, now=NOW)
    schedule.claim("o-live", D, "worker-a@host#1", NOW)
    schedule.heartbeat("worker-a@host#1", ttl_ms=5_000)
    schedule.claim("o-gone", D, "worker-dead@host#1", NOW)  # never beats

    assert sweep(schedule, at - timedelta(seconds=0.1)) == []  # not yet re-checked
    assert sweep(schedule, at) == [("o-gone", D)]
    assert sweep(schedule, at + timedelta(seconds=GRACE - 0.1)) == []  # backing off
    assert sweep(schedule, at + timedelta(seconds=GRACE)) == [("o-gone", D)]
    assert sweep(schedule, at + timedelta(seconds=GRACE * 2)) == []  # twice as long now


def test_an_unclaimed_deadline_waits_while_the_queue_is_busy_then_is_sent_again(schedule):
    at = armed_overdue(schedule, "o-queued")

    assert sweep(schedule, at, queued=5) == []  # presumed queued behind the others
    assert sweep(schedule, at + timedelta(seconds=GRACE), queued=5) == []
    assert sweep(schedule, at + timedelta(seconds=2 * GRACE), queued=0) == [("o-queued", D)]


def test_release_keeps_an_armed_claim_unless_the_task_failed(schedule):
    at = armed_overdue(schedule, "o-1")
    schedule.claim("o-1", D, "worker-a@host#1", NOW)
    schedule.heartbeat("worker-a@host#1", ttl_ms=5_000)

    schedule.release("o-1", D)  # a stale copy ran: the deadline is still armed, still claimed
    assert sweep(schedule, at) == []
    schedule.release("o-1", D, even_if_armed=True)  # its task failed: back to the sweep
    assert sweep(schedule, at + timedelta(seconds=GRACE)) == [("o-1", D)]
