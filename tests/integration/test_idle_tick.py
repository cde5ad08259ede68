"""Beat sends the tick only when it has work (worker/adapters/beat_schedule.py): the probe
reads the tick's own conditions from a real Redis (or Cluster), at their edges; the schedule sends
an idle tick only every AFTERSALES_IDLE_TICK_EVERY, and sends it when the probe fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from worker.adapters import beat_schedule as beat
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
from worker.adapters.store_base import epoch

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HORIZON = timedelta(seconds=60)
RELAY_AFTER = timedelta(seconds=5)


@pytest.fixture
def store(redis_client):
    return RedisStore(redis_client)


def has_work(store: RedisStore) -> bool:
    return store.tick_has_work(NOW + HORIZON, NOW, NOW - RELAY_AFTER)


def put(store: RedisStore, index: str, member: str, at: datetime) -> None:
    order = member.split("|")[0]
    key = getattr(store.keys, index)(store.keys.shard_of(order))
    store.client.zadd(key, {member: epoch(at)})


SECOND = timedelta(seconds=1)
EDGES = [
    # (index, score, the tick has work)
    ("schedule", NOW + HORIZON, True),  # due at the horizon's end: armed by this tick
    ("schedule", NOW + HORIZON + SECOND, False),  # beyond it: a later tick
    ("schedule", NOW - timedelta(days=1), True),  # long overdue, never armed
    ("armed", NOW, True),  # its re-check time has come: the sweep looks at it
    ("armed", NOW + SECOND, False),  # armed, its task on its way: nothing to do yet
    ("outbox_pending", NOW - RELAY_AFTER, True),  # unconfirmed for the relay time: relay
    ("outbox_pending", NOW - RELAY_AFTER + SECOND, False),  # just committed: its own publish
]


def test_nothing_anywhere_is_no_work(store):
    assert has_work(store) is False


@pytest.mark.parametrize(("index", "score", "expected"), EDGES)
def test_the_probe_reads_the_ticks_own_conditions(store, index, score, expected):
    member = (
        keys.deadline_member("o-1", "unpaid_expiry:")
        if index != "outbox_pending"
        else "o-1|entry-1"
    )
    put(store, index, member, score)
    assert has_work(store) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def probe(monkeypatch) -> Iterator[tuple[list[object], Clock]]:
    """What the probe answers next (True, False or an exception), and the faked clock."""
    answers: list[object] = []

    def answer() -> bool:
        value = answers.pop(0)
        if isinstance(value, Exception):
            raise value
        return bool(value)

    clock = Clock()
    monkeypatch.setattr(beat, "work_probe", answer)
    monkeypatch.setattr(beat, "monotonic", clock)
    yield answers, clock


def test_an_idle_tick_is_skipped_until_idle_every_has_passed(probe):
    answers, clock = probe
    schedule = beat.TickSchedule(timedelta(seconds=1), idle_every=30.0)
    due = datetime.now(UTC) - timedelta(seconds=2)  # the interval is up

    assert schedule.is_due(due).is_due  # the first tick after start is sent unasked
    answers.append(False)
    clock.now += 1
    state = schedule.is_due(due)
    assert not state.is_due and state.next == 2.0  # idle: asked again two intervals later
    assert beat.IDLE_PROBE_EVERY == 2
    answers.append(True)
    clock.now += 1
    assert schedule.is_due(due).is_due  # work: sent
    clock.now += 30
    assert schedule.is_due(due).is_due  # 30 s without a tick: sent without asking
    assert answers == []


def test_a_failing_probe_sends_the_tick(probe):
    answers, clock = probe
    schedule = beat.TickSchedule(timedelta(seconds=1), idle_every=30.0)
    due = datetime.now(UTC) - timedelta(seconds=2)
    assert schedule.is_due(due).is_due
    clock.now += 1
    answers.append(ConnectionError("Redis away"))
    assert schedule.is_due(due).is_due


def test_idle_every_zero_sends_every_tick(probe):
    schedule = beat.TickSchedule(timedelta(seconds=1), idle_every=0.0)
    due = datetime.now(UTC) - timedelta(seconds=2)
    for _ in range(3):
        assert schedule.is_due(due).is_due  # never asks: no answer queued


def test_the_schedule_survives_beats_schedule_file():
    import pickle

    schedule = beat.TickSchedule(timedelta(seconds=1), idle_every=12.0)
    copy = pickle.loads(pickle.dumps(schedule))
    assert isinstance(copy, beat.TickSchedule)
    assert copy.run_every == schedule.run_every and copy.idle_every == 12.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, timedelta(seconds=30)),  # the default
        ("PT0S", timedelta(0)),  # every tick sent
        ("0", timedelta(0)),
        ("PT5M", timedelta(minutes=5)),
    ],
)
def test_the_idle_tick_setting(monkeypatch, raw, expected):
    from worker.settings import Settings

    monkeypatch.delenv("AFTERSALES_IDLE_TICK_EVERY", raising=False)
    if raw is not None:
        monkeypatch.setenv("AFTERSALES_IDLE_TICK_EVERY", raw)
    assert Settings.from_env().idle_tick_every == expected


@pytest.mark.parametrize("raw", ["30", "soon", "-PT1S"])
def test_a_bad_idle_tick_setting_stops_start_up_readably(monkeypatch, raw):
    from worker.settings import Settings, SettingsError

    monkeypatch.setenv("AFTERSALES_IDLE_TICK_EVERY", raw)
    with pytest.raises(SettingsError, match="AFTERSALES_IDLE_TICK_EVERY"):
        Settings.from_env()
