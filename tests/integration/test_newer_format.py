"""An older worker meeting data a newer release wrote leaves it and lets it come back:
never a dead letter, never a crash, never a rewrite (schemas/formats.py,
docs/operations.md "Upgrades"). A real worker; the newer release is played by writing an
order's state in a format above the one this release reads."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from schemas import formats
from tests.support.messages import BUYER_ACTION, ORDER_EVENT, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.state import wait_applied
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration

LEFT_FOR = 4.0
"""Seconds the test watches the worker leave the newer state alone (several retries)."""


def to_newer_format(client, order: str) -> bytes:
    """Rewrite the order's state as a newer release would: a higher format version and a
    field this release does not know. Returns what was there before."""
    key = RedisStore(client).keys.order_state(order)
    before = client.hget(key, "state")
    newer = {**json.loads(before), "format": formats.KNOWN[formats.ORDER_STATE] + 1}
    newer["offers"] = {"o1": {"kind": "partial_refund"}}  # a future optional field
    client.hset(key, "state", json.dumps(newer))
    return before


def test_a_message_and_a_deadline_of_an_order_in_a_newer_format_wait_for_a_reader(
    start_worker, start_beat, wire_client, event_listener, redis_client
):
    worker = start_worker(concurrency=1)
    start_beat()
    asked, unpaid = new_id("o"), new_id("o")
    wire_client.send(ORDER_EVENT, placed(asked, datetime.now(UTC) - timedelta(minutes=5)))
    # Unpaid: its 48 h expiry comes due while the state is in the newer format.
    due = datetime.now(UTC) + timedelta(seconds=3)
    wire_client.send(ORDER_EVENT, placed(unpaid, due - timedelta(hours=48)))
    wait_applied(redis_client, asked, 1)
    wait_applied(redis_client, unpaid, 1)
    kept = {order: to_newer_format(redis_client, order) for order in (asked, unpaid)}
    newer = {order: redis_client.hget(RedisStore(redis_client).keys.order_state(order), "state")
             for order in kept}  # fmt: skip

    wire_client.send(
        BUYER_ACTION,
        message("buyer.cancel_requested", asked, datetime.now(UTC), reason="changed mind"),
    )
    wait_until(lambda: datetime.now(UTC) > due, 30)
    worker.wait_for_log("newer than this release reads", 30)
    time.sleep(LEFT_FOR)  # watching for something that must not happen: nothing to poll

    assert worker.alive()
    assert event_listener.dead_letters(timeout=0, count=0) == []
    assert not event_listener.of_type("order.cancelled")
    for order, state in newer.items():  # left exactly as the newer release wrote it
        key = RedisStore(redis_client).keys.order_state(order)
        assert redis_client.hget(key, "state") == state

    # A newer worker took over (played by restoring the readable form): both come back.
    for order, state in kept.items():
        redis_client.hset(RedisStore(redis_client).keys.order_state(order), "state", state)
    for order in (asked, unpaid):
        event_listener.wait_for(
            lambda e, o=order: e["type"] == "order.cancelled" and e["subject"] == o, timeout=60
        )
    assert event_listener.dead_letters(timeout=0, count=0) == []


def test_replay_leaves_a_dead_letter_of_a_newer_release_in_the_queue(redis_url, monkeypatch):
    from click.testing import CliRunner
    from kombu import Connection

    from worker.adapters import topology
    from worker.cli.main import main
    from worker.settings import get_settings

    newer = {"format": formats.KNOWN[formats.DEAD_LETTER] + 1, "task": ORDER_EVENT,
             "original": message("order.paid", new_id("o"), datetime.now(UTC)),
             "reason": "something_new"}  # fmt: skip
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue(topology.dead_letter_queue)
        queue.put(newer)
        queue.close()
    monkeypatch.setenv("AFTERSALES_REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["replay"], catch_exceptions=False)
        listed = CliRunner().invoke(main, ["dead-letters", "--json"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert json.loads(result.output)["replayed"] == 0
    assert json.loads(listed.output) == [newer]  # kept as it was, for a newer release
