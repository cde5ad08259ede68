"""`aftersales publish` as a subprocess against a real Redis and worker."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_readable_views import AFTERSALES, aftersales, cli_env
from tests.support.messages import ago, message, new_id, placed
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def test_publish_applies_the_good_lines_and_names_the_bad_ones(
    redis_url, start_worker, event_listener, tmp_path: Path
):
    start_worker()
    order = new_id("o")
    lines = [
        json.dumps(placed(order, ago(minutes=10))),                        # 1 good
        "{this is not json",                                               # 2
        json.dumps(message("order.teleported", order, ago(minutes=9))),    # 3 unknown type
        "",                                                                # (blank)
        json.dumps(message("buyer.cancel_requested", order, ago(minutes=8))),  # 5 no reason
        json.dumps(message("buyer.cancel_requested", order, ago(minutes=7),
                           reason="changed my mind")),                     # 6 good
    ]  # fmt: skip
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = aftersales(redis_url, "publish", str(path))

    assert result.returncode == 1, result.stderr
    assert "2 sent, 3 refused" in result.stdout
    refused = [line.split(":")[0].strip() for line in result.stdout.splitlines()[1:]]
    assert refused == ["line 2", "line 3", "line 5"]
    assert "reason" in result.stdout.splitlines()[3]
    (cancelled,) = event_listener.wait_for("order.cancelled", timeout=20)
    assert cancelled["subject"] == order and cancelled["data"]["by"] == "buyer"


def test_publish_reads_an_array_from_stdin_at_the_given_rate(redis_url, start_worker):
    start_worker()
    orders = [new_id("o") for _ in range(5)]
    body = json.dumps([placed(order, ago(minutes=3)) for order in orders], indent=2)

    started = time.monotonic()
    result = subprocess.run(
        [AFTERSALES, "publish", "-", "--rate", "10"], input=body, capture_output=True,
        text=True, timeout=60, env=cli_env(redis_url),
    )  # fmt: skip
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5 sent, 0 refused"
    assert elapsed >= 0.4  # five sends at ten a second: the last is due 0.4 s after the first
    for order in orders:
        _wait(lambda order=order: aftersales(redis_url, "order", order, "--json").returncode == 0)


def _wait(condition, timeout: float = 20.0) -> None:
    wait_until(condition, timeout, "condition not reached in time")
