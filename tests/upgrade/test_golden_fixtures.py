"""Every stored form loads: Redis as each past release left it (tests/upgrade/fixtures/,
written by that release's own code, see make_fixtures.py) is loaded into a clean Redis,
today's worker and beat run on it, and every order is driven to completion: its overdue
deadlines fire, its held message gives up, its outbox is relayed; nothing else is
dead-lettered and no script is run first (1.0 states are upgraded on load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import wait_until
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}


def load(client: Any, rows: list[dict[str, Any]]) -> None:
    """Write the dumped keys back as they were (expiries included)."""
    pipe = client.pipeline(transaction=False)
    for row in rows:
        key, value = row["key"], row["value"]
        if row["type"] == "string":
            pipe.set(key, value)
        elif row["type"] == "hash":
            pipe.hset(key, mapping=value)
        elif row["type"] == "zset":
            pipe.zadd(key, {member: score for member, score in value})
        elif row["type"] == "set":
            pipe.sadd(key, *value)
        elif row["type"] == "list":
            pipe.rpush(key, *value)
        if row["pttl"] > 0:
            pipe.pexpire(key, row["pttl"])
    pipe.execute()


def renamed(fixture: dict[str, Any], release: str) -> dict[str, Any]:
    """The fixture with its orders renamed apart (`fx-` -> `fx-<release>-`), so every
    release's data shares one Redis and one worker run. Order ids are plain strings in
    keys, states, members and entries alike (a JSON value's own JSON escapes the quote,
    which still precedes the id), so a textual rename is exact."""
    tag = "fx-" + release.replace(".", "") + "-"
    text = json.dumps(fixture).replace('"fx-', '"' + tag).replace("{fx-", "{" + tag)
    return dict(json.loads(text))


def test_what_every_past_release_stored_is_driven_to_completion_by_today(
    redis_client, start_worker, start_beat, event_listener, broker_url
):
    if broker_url.startswith("amqp"):
        pytest.skip("the fixtures hold a Redis broker's keys")
    fixtures = [renamed(json.loads(p.read_text()), p.stem) for p in sorted(FIXTURES.glob("*.json"))]
    assert len(fixtures) >= 2, "a fixture of every past release (1.0, 1.1)"
    assert not redis_client.keys("aftersales:*"), "the test Redis is not clean"
    orders = [order for fixture in fixtures for order in fixture["orders"]]
    for fixture in fixtures:
        load(redis_client, fixture["keys"])
    store = RedisStore(redis_client)
    for order in orders:  # each loads as it is, before any worker runs
        assert store.load(order["order"]).state is not None, order["order"]

    start_worker(concurrency=1, env=SWEEP)
    start_beat(env=SWEEP)

    for order in orders:
        name, expect = order["order"], order["expect"]
        for event_type in expect["events"]:
            event_listener.wait_for(
                lambda e, t=event_type, o=name: e["type"] == t and e["subject"] == o,
                timeout=90,
            )
    expected_letters = sorted(r for o in orders for r in o["expect"]["dead_letters"])
    letters = event_listener.dead_letters(count=len(expected_letters), timeout=90)
    assert sorted(letter["reason"] for letter in letters) == expected_letters, letters

    def settled() -> bool:
        schedule = redis_client.zcard(keys.SCHEDULE) + redis_client.zcard(keys.ARMED)
        outbox = redis_client.zcard(keys.OUTBOX_PENDING)
        return schedule == 0 and outbox == 0

    wait_until(settled, 60, "deadlines or outbox entries of the fixtures are still pending")
    for order in orders:
        state = store.load(order["order"]).state
        assert state is not None and not state.deadlines and not state.parked, order["order"]
    assert len(event_listener.dead_letters(timeout=0, count=0)) == len(expected_letters)
