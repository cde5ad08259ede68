"""The examples run against a real Redis and a real worker, as examples/README.md says."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.messages import new_id
from tests.unit.test_examples import STATE_1_0, load_example
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration


def test_the_walkthrough_gets_every_return_event_and_the_label_files(redis_url, start_worker):
    walkthrough = load_example("walkthrough")
    start_worker()
    order_id = new_id("walkthrough")

    received = walkthrough.run(redis_url, order_id, timeout=90)

    assert [e.type for e in received] == list(walkthrough.EXPECTED)
    label = received[2]
    assert label.data.cost.amount == Decimal("2.99") and label.data.payer == "buyer"
    files = walkthrough.label_files(label)
    assert [p.suffix for p in files] == [".png", ".pdf"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert Path(str(files[0]).replace(".qr.png", ".qr.svg")).is_file()


def test_the_upgrade_makes_a_1_0_state_loadable_and_bumps_its_version(redis_client):
    upgrade = load_example("upgrade_1_0_states")
    state = json.loads(STATE_1_0.read_text())
    key = keys.order_state(state["order_id"])
    redis_client.hset(key, mapping={"state": json.dumps(state), "version": 7})
    store = RedisStore(redis_client)
    with pytest.raises(ValueError, match="currency is required"):
        store.load(state["order_id"])

    assert upgrade.upgrade_all(redis_client, dry_run=True) == [key]
    assert int(redis_client.hget(key, "version")) == 7  # a dry run writes nothing

    assert upgrade.upgrade_all(redis_client) == [key]
    loaded = store.load(state["order_id"])
    assert loaded.version == 8 and loaded.state is not None
    assert loaded.state.policy is not None and loaded.state.policy.currency == "GBP"
    assert upgrade.upgrade_all(redis_client) == []


def test_the_1_2_upgrade_gives_orders_closed_before_it_their_tombstone(redis_client):
    """An order closed by a version before 1.2 has its keys' expiry but no tombstone: once
    its keys expire, a late message for it would start it afresh. The upgrade writes the
    tombstone a 1.2 commit would have written (the keys' TTL + the tombstone retention)."""
    from datetime import timedelta

    upgrade = load_example("upgrade_1_2_tombstones")
    store = RedisStore(redis_client)
    closed, open_, done = new_id("closed"), new_id("open"), new_id("done")
    for order_id in (closed, open_, done):
        redis_client.hset(keys.order_state(order_id), mapping={"state": "{}", "version": 1})
    redis_client.pexpire(keys.order_state(closed), 3_600_000)  # closed by 1.1: an hour left
    redis_client.pexpire(keys.order_state(done), 3_600_000)
    redis_client.set(keys.expired(done), "1", px=7_200_000)  # closed by 1.2 already
    tombstone = timedelta(days=1)

    assert upgrade.tombstone_all(redis_client, tombstone, dry_run=True) == [closed]
    assert not redis_client.exists(keys.expired(closed))  # a dry run writes nothing
    assert upgrade.tombstone_all(redis_client, tombstone) == [closed]
    ttl = redis_client.pttl(keys.expired(closed))
    assert 3_600_000 + 86_400_000 - 60_000 < ttl <= 3_600_000 + 86_400_000
    assert not redis_client.exists(keys.expired(open_))  # open: no tombstone
    assert redis_client.pttl(keys.expired(done)) <= 7_200_000  # left as 1.2 wrote it
    assert upgrade.tombstone_all(redis_client, tombstone) == []  # a second run: nothing

    redis_client.delete(keys.order_state(closed))  # its keys expire
    begun = store.begin_message(closed, new_id("m"), "digest", new_id("t"))
    assert begun.loaded is not None and begun.loaded.expired  # order_expired, not new
