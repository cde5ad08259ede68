"""Rules changed mid-flight: a policy file rolled out (one worker at a time) while orders
are open. Orders keep the terms they were placed under (the state names its policy by
content hash), new orders get the new ones, a deadline armed under the old terms fires at
its old time, and `aftersales order ID` says which terms an order is under."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, message, new_id, placed
from tests.support.state import wait_applied
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration

SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
OLD = '[marketplaces.UK]\ncancel_response_window = "PT48H"\n'
NEW = '[marketplaces.UK]\ncancel_response_window = "PT72H"\n'
"""The rollout: UK sellers get 72 h instead of 48 h to answer a cancel request."""
DUE_IN = timedelta(seconds=20)
"""The old order's 48 h answer window ends this long after its request is sent: time to
replace the worker first."""
LATE_BOUND = 10.0
"""Seconds the auto-accept may come after its old time on a loaded 2-core machine."""


def cancel_request(wire_client, order: str, at: datetime) -> None:
    wire_client.send(ORDER_EVENT, placed(order, at - timedelta(hours=3), marketplace="UK",
                                         currency="GBP"))  # fmt: skip
    wire_client.send(ORDER_EVENT, message("order.paid", order, at - timedelta(hours=3)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, at, reason="changed mind")
    )


def order_view(redis_url: str, policy_file, order: str, monkeypatch) -> dict:
    from worker.cli.main import main
    from worker.settings import get_settings

    monkeypatch.setenv("AFTERSALES_REDIS_URL", redis_url)
    monkeypatch.setenv("AFTERSALES_POLICY_FILE", str(policy_file))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["order", order, "--json"], catch_exceptions=False)
        text = CliRunner().invoke(main, ["order", order], catch_exceptions=False).output
    finally:
        get_settings.cache_clear()
    return {**json.loads(result.output), "text": text}


def test_a_policy_rolled_out_mid_flight_keeps_each_order_under_its_own_terms(
    start_worker, start_beat, wire_client, event_listener, redis_client, redis_url,
    tmp_path, monkeypatch,
):  # fmt: skip
    old_file, new_file = tmp_path / "old.toml", tmp_path / "new.toml"
    old_file.write_text(OLD)
    new_file.write_text(NEW)
    old_worker = start_worker(concurrency=1, env={**SWEEP, "AFTERSALES_POLICY_FILE": str(old_file)})
    start_beat(env={**SWEEP, "AFTERSALES_POLICY_FILE": str(old_file)})

    # Placed and asked under the old terms: the seller's 48 h end DUE_IN from now.
    before = new_id("o")
    requested = datetime.now(UTC) - timedelta(hours=48) + DUE_IN
    cancel_request(wire_client, before, requested)
    wait_applied(redis_client, before, 3)
    old_due = requested + timedelta(hours=48)

    # The rollout, one process at a time: a worker with the new file, then the old one
    # stops; an order placed now gets the new terms.
    start_worker(concurrency=1, env={**SWEEP, "AFTERSALES_POLICY_FILE": str(new_file)})
    old_worker.stop()
    after = new_id("o")
    cancel_request(wire_client, after, requested)  # the same request time
    wait_applied(redis_client, after, 3)

    # The old order's answer window ends at its old time (not 24 h later) ...
    (auto,) = event_listener.wait_for(
        lambda e: e["type"] == "cancellation.auto_accepted" and e["subject"] == before,
        timeout=DUE_IN.total_seconds() + 60,
    )
    assert datetime.now(UTC).timestamp() - old_due.timestamp() < LATE_BOUND
    fired_for = datetime.fromisoformat(auto["data"]["deadline"].replace("Z", "+00:00"))
    assert fired_for == old_due  # the deadline of the old terms, not the new ones

    # ... and the new order's ends 72 h after its request.
    store = RedisStore(redis_client)
    state = store.load(after).state
    assert state is not None
    (pending,) = [d for d in state.deadlines.values() if d.kind == "cancel_response"]
    assert pending.due_at == requested + timedelta(hours=72)
    event_listener.assert_none(
        lambda e: e["type"] == "cancellation.auto_accepted" and e["subject"] == after, within=1
    )

    # The operator sees which terms each order is under, against the file in force now.
    old_view = order_view(redis_url, new_file, before, monkeypatch)
    new_view = order_view(redis_url, new_file, after, monkeypatch)
    assert old_view["terms"]["windows"]["cancel_response_window"] == "PT48H"
    assert old_view["terms"]["same_as_current"] is False
    assert new_view["terms"]["windows"]["cancel_response_window"] == "PT72H"
    assert new_view["terms"]["same_as_current"] is True
    assert old_view["terms"]["policy"] != new_view["terms"]["policy"]
    assert "placed under an earlier policy" in old_view["text"]
    assert "as new orders today" in new_view["text"]
