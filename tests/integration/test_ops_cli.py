"""The operator commands against a real Redis and a real worker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed
from worker.cli.main import main

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(redis_url, monkeypatch):
    monkeypatch.setenv("AFTERSALES_REDIS_URL", redis_url)
    from worker.settings import get_settings

    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(main, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def test_order_and_deadlines_show_the_timeline_and_the_pending_expiry(
    start_worker, wire_client, event_listener, cli
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(hours=1)))
    event_listener.collect(0.1)
    _wait_for_order(cli, order)

    view = json.loads(cli("order", order, "--json").output)
    listing = json.loads(cli("deadlines", "--next", "5").output)

    assert view["timeline"][0]["input"] == "order.placed"
    assert [d["kind"] for d in view["deadlines"]] == ["unpaid_expiry"]
    assert listing["pending"]["scheduled"] == 1
    assert listing["next"][0]["order_id"] == order
    assert cli("order", "no-such-order").exit_code != 0


@pytest.mark.redis_broker("`aftersales dead-letters` lists a Redis broker's queue")
def test_a_message_held_too_long_is_dead_lettered_listed_and_replayed(
    start_worker, start_beat, wire_client, cli
):
    env = {"AFTERSALES_HOLD_FOR": "PT2S", "AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
    start_worker(env=env)
    start_beat(env=env)
    order = new_id("o")
    paid = message("order.paid", order, ago(minutes=5))

    wire_client.send(ORDER_EVENT, paid)  # the order was never placed: held, then dead
    _wait(lambda: json.loads(cli("dead-letters", "--json").output))
    (letter,) = json.loads(cli("dead-letters", "--json").output)
    assert letter["original"] == paid and letter["reason"] == "held_too_long"
    assert letter["task"] == ORDER_EVENT

    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=10)))  # the missing fact
    _wait_for_order(cli, order)
    result = json.loads(cli("replay").output)

    assert result["replayed"] == 1
    _wait(lambda: json.loads(cli("order", order, "--json").output)["state"]["paid_at"] is not None)
    assert json.loads(cli("dead-letters", "--json").output) == []


def _wait_for_order(cli, order: str) -> None:
    _wait(lambda: cli("order", order).exit_code == 0)


def _wait(condition, timeout: float = 15.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.1)
