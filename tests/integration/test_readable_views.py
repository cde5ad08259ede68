"""`aftersales order` and `aftersales dead-letters` read as tables by default, JSON with
`--json`; run as subprocesses against a real Redis and worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

AFTERSALES = str(Path(sys.executable).parent / "aftersales")


def cli_env(redis_url: str) -> dict[str, str]:
    """This process's environment, pointed at the test Redis; wide, so tables do not wrap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    env.update(AFTERSALES_REDIS_URL=redis_url, COLUMNS="220")
    return env


def aftersales(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`aftersales ARGS` as a subprocess (the installed console script)."""
    return subprocess.run(
        [AFTERSALES, *args], env=cli_env(redis_url), capture_output=True, text=True, timeout=60
    )


def test_order_shows_a_timeline_and_open_requests_in_local_and_utc_time(
    redis_url, start_worker, wire_client, event_listener
):
    start_worker()
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(days=6), marketplace="UK", currency="GBP"))
    for step, days in (("order.paid", 5.9), ("order.shipped", 5), ("order.delivered", 3)):
        wire_client.send(ORDER_EVENT, message(step, order, ago(days=days)))
    wire_client.send(BUYER_ACTION, message(
        "buyer.return_requested", order, ago(hours=1), request_id="r-1", kind="refund_only",
        reason="damaged"))  # fmt: skip
    (requested,) = event_listener.wait_for("return.requested", timeout=20)

    shown = aftersales(redis_url, "order", order)

    assert shown.returncode == 0, shown.stderr
    respond_by = datetime.fromisoformat(requested["data"]["respond_by"])
    london = respond_by.astimezone(ZoneInfo("Europe/London"))
    text = shown.stdout
    for expected in (
        "Timeline",
        "order.placed",
        "order.delivered",
        "buyer.return_requested",
        "return.requested",
        "Open requests",
        "return r-1 (refund_only)",
        f"{respond_by:%Y-%m-%d %H:%M:%S} UTC",
        f"{london:%Y-%m-%d %H:%M}",
        "Europe/London",
        "Pending deadlines",
        "return_response",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    as_json = json.loads(aftersales(redis_url, "order", order, "--json").stdout)
    # Every input is in the timeline; not necessarily last: two processes race, and a fact
    # that arrives after later ones were held is committed after them.
    assert "buyer.return_requested" in [entry["input"] for entry in as_json["timeline"]]


def test_dead_letters_are_a_table_and_json_on_request(redis_url, start_worker, wire_client):
    start_worker()
    bad = message("order.paid", new_id("o"), ago(minutes=1), unexpected="field")
    wire_client.send(ORDER_EVENT, bad)
    wait_until(
        lambda: json.loads(aftersales(redis_url, "dead-letters", "--json").stdout),
        30,
        "the bad message was never dead-lettered",
    )

    table = aftersales(redis_url, "dead-letters").stdout
    (letter,) = json.loads(aftersales(redis_url, "dead-letters", "--json").stdout)

    assert letter["original"] == bad
    for expected in (
        "Dead letters",
        ORDER_EVENT,
        letter["reason"],
        bad["message_id"],
        "unexpected",
    ):
        assert expected in table, f"{expected!r} missing from:\n{table}"


def test_an_unknown_order_is_an_error(redis_url):
    result = aftersales(redis_url, "order", "no-such-order")

    assert result.returncode != 0 and "no order 'no-such-order'" in result.stderr
