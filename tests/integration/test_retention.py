"""Retention with a real worker (docs/rules.md, retention): a closed order's keys get a
TTL in its commit and are gone after it, its tombstone stays longer; a late message for
it is dead-lettered `order_expired`, never a new order; an order that reopens keeps its
keys again (and has no tombstone); an order never seen is new however old (1.2)."""

from __future__ import annotations

import pytest
import redis

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.processes import wait_until
from worker.adapters import keys

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

RETENTION = "PT4S"
"""Short enough to see keys go within the test, long enough that a loaded machine still
applies a message sent now within it (a new order's messages must be younger)."""


def _space(client: redis.Redis) -> keys.Keyspace:
    """The key names of the state's deployment (one Redis, or --redis-cluster's)."""
    from worker.adapters.redis_store import RedisStore

    return RedisStore(client).keys


def _order_keys(client: redis.Redis, order: str) -> list[str]:
    space = _space(client)
    return [
        space.order_state(order),
        space.seen_messages(order),
        space.message_digests(order),
        space.timeline(order),
    ]


def _ttls(client: redis.Redis, order: str) -> list[int]:
    return [int(client.pttl(key)) for key in _order_keys(client, order)]


def test_a_closed_order_expires_and_a_late_message_for_it_is_dead_lettered(
    start_worker, wire_client, event_listener, redis_client
):
    start_worker(env={"AFTERSALES_RETENTION": RETENTION, "AFTERSALES_TOMBSTONE_RETENTION": "PT1H"})
    closing, reopening = new_id("o"), new_id("o")
    first = placed(closing, ago(seconds=0))
    wire_client.send(ORDER_EVENT, first)
    wire_client.send(ORDER_EVENT, placed(reopening, ago(seconds=0)))
    for kind in ("order.paid", "order.shipped", "order.delivered"):
        fields = {"tracking_number": "T-1"} if kind == "order.shipped" else {}
        wire_client.send(ORDER_EVENT, message(kind, reopening, ago(seconds=0), **fields))
    # Cancelled before payment: at once, no deadline left, nothing open: closed.
    cancel = message("buyer.cancel_requested", closing, ago(seconds=-1), reason="mistake")
    wire_client.send(BUYER_ACTION, cancel)
    event_listener.wait_for(lambda e: e["type"] == "order.cancelled" and e["subject"] == closing)

    ttls = _ttls(redis_client, closing)
    assert all(0 < ttl <= 4000 for ttl in ttls), ttls  # every key, in the closing commit
    tombstone = _space(redis_client).expired(closing)
    assert 3_600_000 < redis_client.pttl(tombstone) <= 3_604_000  # keys' TTL + 1 h
    wait_until(
        lambda: not any(redis_client.exists(key) for key in _order_keys(redis_client, closing)),
        30.0,
        "the closed order's keys never expired",
    )

    # The order's own order.placed again (a redelivery, a replay): refused, not re-created.
    wire_client.send(ORDER_EVENT, first)
    (letter,) = event_listener.dead_letters(match=lambda d: d["reason"] == "order_expired")
    assert letter["original"]["order_id"] == closing
    assert not redis_client.exists(_space(redis_client).order_state(closing))
    assert not redis_client.exists(_space(redis_client).inflight(closing))
    digests = int(redis_client.pttl(_space(redis_client).message_digests(closing)))
    assert digests == -2 or 0 < digests <= 4000  # never a key left without expiry

    # The delivered order is closed too (until its return window ends, plus retention)...
    wait_until(lambda: _ttls(redis_client, reopening)[0] > 0, 30.0, "delivered order no TTL")
    assert all(ttl > 4000 for ttl in _ttls(redis_client, reopening))
    # ...and a return request opens it again: every key persists, in that same commit.
    request = message(
        "buyer.return_requested", reopening, ago(seconds=-1),
        request_id="r-1", kind="return_and_refund", reason="damaged", method="self_arrange",
    )  # fmt: skip
    wire_client.send(BUYER_ACTION, request)
    event_listener.wait_for(lambda e: e["type"] == "return.requested" and e["subject"] == reopening)
    assert _ttls(redis_client, reopening) == [-1, -1, -1, -1]
    assert not redis_client.exists(_space(redis_client).expired(reopening))
    others = [d for d in event_listener.letters if d["reason"] != "order_expired"]
    assert others == []


def test_an_order_never_seen_is_a_new_order_however_old_its_messages(
    start_worker, wire_client, event_listener, redis_client
):
    """The issue's UK order: placed 61 days ago, delivered 20 days ago, its messages
    arriving now (cross-border, or a marketplace onboarding its open orders): answered."""
    start_worker()
    order = new_id("o")
    facts = [
        placed(order, ago(days=61), marketplace="UK", currency="GBP"),
        message("order.paid", order, ago(days=61, hours=-1)),
        message("order.shipped", order, ago(days=59), tracking_number="T-9"),
        message("order.delivered", order, ago(days=20)),
    ]
    for fact in facts:
        wire_client.send(ORDER_EVENT, fact)
    request = message(
        "buyer.return_requested", order, ago(hours=1),
        request_id="r-1", kind="refund_only", reason="damaged",
    )  # fmt: skip
    wire_client.send(BUYER_ACTION, request)
    (requested,) = event_listener.wait_for("return.requested")
    assert requested["subject"] == order
    assert event_listener.letters == []


def test_digests_claimed_by_begin_expire_with_the_order_and_whole_old_digests_still_match(
    redis_client,
):
    import hashlib
    from datetime import timedelta

    from worker.adapters.redis_store import RedisStore

    store = RedisStore(redis_client)
    body, other = (hashlib.sha256(text).hexdigest() for text in (b"body", b"other"))
    retain = timedelta(seconds=100)

    def claim(order: str, message_id: str, digest: str) -> str:
        return store.begin_message(order, message_id, digest, "", retain).status

    unknown = new_id("o")  # no state: the digests expire after the retention
    assert claim(unknown, "m-1", body) == "new"
    assert 0 < redis_client.pttl(_space(redis_client).message_digests(unknown)) <= 100_000
    assert claim(unknown, "m-1", body) == "new"  # the same body again
    assert claim(unknown, "m-1", other) == "reused"  # reused id

    stored_whole = new_id("o")  # a digest stored whole, before they were cut
    redis_client.hset(
        _space(redis_client).order_state(stored_whole), "version", 1
    )  # open: no expiry
    redis_client.hset(_space(redis_client).message_digests(stored_whole), "m-1", body)
    assert claim(stored_whole, "m-1", body) == "new"
    assert claim(stored_whole, "m-1", other) == "reused"
    assert claim(stored_whole, "m-2", other) == "new"
    assert redis_client.pttl(_space(redis_client).message_digests(stored_whole)) == -1

    closed = new_id("o")  # closed: the digests take the state's own expiry
    redis_client.hset(_space(redis_client).order_state(closed), "version", 1)
    redis_client.pexpire(_space(redis_client).order_state(closed), 50_000)
    assert claim(closed, "m-1", body) == "new"
    assert 0 < redis_client.pttl(_space(redis_client).message_digests(closed)) <= 50_000
