"""examples/node: a Node.js producer (celery-node) reaches the worker.

Runs when `node` and `npm` are on PATH (installing the example's locked dependencies
first); skipped, saying why, when they are not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.messages import new_id

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"
NPM_TIMEOUT = 300  # a first `npm ci` downloads 31 small packages; a loaded CI machine is slow


@pytest.fixture(scope="module")
def node_example() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "node and npm are not installed: the Node.js example (examples/node) "
            "is not exercised on this machine"
        )
    if not (EXAMPLE / "node_modules" / "celery-node").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            check=True,
            timeout=NPM_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    return EXAMPLE


def test_the_node_producer_is_understood_by_the_worker(
    node_example, redis_url, start_worker, event_listener
):
    start_worker()
    order = new_id("node")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    env["AFTERSALES_REDIS_URL"] = redis_url

    result = subprocess.run(
        ["node", "send.js", order],
        cwd=node_example,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    (cancelled,) = event_listener.wait_for(
        lambda event: event["type"] == "order.cancelled" and event["subject"] == order, timeout=20
    )
    assert cancelled["data"]["by"] == "buyer" and cancelled["data"]["refund"] is None
