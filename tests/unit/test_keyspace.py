"""The keyspaces (worker/adapters/keys.py) and the cluster switch (worker/settings.py):
one commit touches one Redis Cluster slot; one Redis keeps its old key names."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from redis.crc import key_slot

from worker.adapters import keys
from worker.settings import Settings, SettingsError

ORDER_KEYS = ("order_state", "seen_messages", "message_digests", "inflight", "timeline")
INDEXES = ("schedule", "armed", "claims", "resends", "lateness", "outbox_pending", "outbox_entries")


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


@pytest.mark.parametrize("order", ["o-1", "o-{braces}", "o}{x", "ümlaut", "o-" + "9" * 200])
def test_every_key_a_commit_touches_is_in_one_slot(order: str) -> None:
    space = keys.CLUSTER
    shard = space.shard_of(order)
    touched = [getattr(space, name)(order) for name in ORDER_KEYS]
    touched += [getattr(space, name)(shard) for name in INDEXES]
    assert len({_slot(key) for key in touched}) == 1


def test_one_redis_keeps_the_names_it_always_had() -> None:
    space, order = keys.SINGLE, "o-42"
    assert space.order_state(order) == keys.order_state(order) == "aftersales:order:{o-42}"
    assert space.seen_messages(order) == keys.seen_messages(order)
    assert space.inflight(order) == keys.inflight(order)
    assert space.timeline(order) == keys.timeline(order)
    assert space.message_digests(order) == keys.message_digests(order)
    assert [space.schedule(0), space.armed(0), space.claims(0), space.resends(0)] == [
        keys.SCHEDULE,
        keys.ARMED,
        keys.CLAIMS,
        keys.RESENDS,
    ]
    assert space.lateness(0) == keys.FIRED_LATENESS
    assert (space.outbox_pending(0), space.outbox_entries(0)) == (
        keys.OUTBOX_PENDING,
        keys.OUTBOX_ENTRIES,
    )
    assert space.shard_of(order) == 0


def test_orders_spread_over_every_shard_and_the_shards_over_slots() -> None:
    space = keys.CLUSTER
    counts = Counter(space.shard_of(f"o-{n}") for n in range(64_000))
    assert len(counts) == keys.CLUSTER_SHARDS
    assert max(counts.values()) < 1.2 * min(counts.values())
    slots = {_slot(space.schedule(shard)) for shard in range(space.shards)}
    assert len(slots) == keys.CLUSTER_SHARDS  # no two shards share a slot
    thirds = Counter(slot * 3 // 16384 for slot in slots)  # redis-cli's 3-primary split
    assert min(thirds.values()) >= keys.CLUSTER_SHARDS // 6


def test_the_key_names_are_pinned() -> None:
    """Part of every key name: a new version must find the keys an old one wrote (CRC-32
    of the order id, modulo 64; never Python's per-process `hash`)."""
    space = keys.CLUSTER
    assert [space.order_state(order) for order in ("o-1", "o-2", "order-123")] == [
        "aftersales:order:{s26}:o-1",
        "aftersales:order:{s32}:o-2",
        "aftersales:order:{s37}:order-123",
    ]
    assert space.schedule(26) == "aftersales:deadlines:{s26}"
    assert space.outbox_entries(5) == "aftersales:outbox:entries:{s05}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AFTERSALES_BROKER_URL", "AFTERSALES_POLICY_FILE", "AFTERSALES_VAR_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AFTERSALES_VAR_DIR", "/nonexistent")
    monkeypatch.setenv("AFTERSALES_REDIS_URL", "redis://10.0.0.1:7000/0")
    monkeypatch.setenv("AFTERSALES_REDIS_CLUSTER", "1")
    return monkeypatch


def test_a_cluster_without_a_broker_is_refused(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="needs AFTERSALES_BROKER_URL"):
        Settings.from_env()


def test_the_cluster_itself_as_broker_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("AFTERSALES_BROKER_URL", "redis://10.0.0.1:7000/1")
    with pytest.raises(SettingsError, match="separate plain Redis or RabbitMQ"):
        Settings.from_env()


@pytest.mark.parametrize("broker", ["redis://10.0.0.9:6379/0", "amqp://guest@rabbit//"])
def test_a_cluster_with_its_own_broker_is_taken(env: pytest.MonkeyPatch, broker: str) -> None:
    env.setenv("AFTERSALES_BROKER_URL", broker)
    settings = Settings.from_env()
    assert settings.redis_cluster and settings.broker_url == broker


def test_the_switch_takes_only_yes_or_no(env: pytest.MonkeyPatch) -> None:
    env.setenv("AFTERSALES_REDIS_CLUSTER", "maybe")
    with pytest.raises(SettingsError, match="AFTERSALES_REDIS_CLUSTER"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("order", "deadline"),
    [
        ("o-1", "unpaid_expiry:"),
        ("ümlaut 中文", "return_response:r-1"),
        ('o-"quoted"\\', "hold:m\n\x1e"),
        ("o-\ud800", "resubmit:r-\u2028"),
    ],
)
def test_a_schedule_member_is_the_text_every_release_wrote(order: str, deadline: str) -> None:
    """Members are matched byte for byte (ZREM, ZSCORE): the text stays `json.dumps`'s."""
    member = keys.deadline_member(order, deadline)
    assert member == json.dumps([order, deadline], separators=(",", ":"))
    assert keys.parse_deadline_member(member) == (order, deadline)
