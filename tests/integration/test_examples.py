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
