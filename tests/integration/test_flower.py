"""`celery -A worker flower` shows every task by name, what it did, and no buyer e-mail in
its arguments."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.support.fixtures import _base_env
from tests.support.messages import BUYER_ACTION, ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import spawn
from worker.cli.embedded_redis import free_port

pytestmark = pytest.mark.integration

EMAIL = "jane.buyer@example.com"


@pytest.fixture
def flower(redis_url, tmp_path):
    port = free_port()
    env = {**_base_env(redis_url, redis_url, None), "FLOWER_UNAUTHENTICATED_API": "true"}
    handle = spawn(
        "flower",
        ["flower", f"--port={port}", "--address=127.0.0.1"],
        env,
        tmp_path,
        tmp_path / "flower.log",
    )
    base = f"http://127.0.0.1:{port}"
    _until(lambda: _get(f"{base}/healthcheck") == "OK", handle)
    yield base, handle
    handle.stop()


@pytest.mark.parametrize("events", ["asked-by-flower", "-E"])
def test_flower_lists_the_tasks_by_name_without_the_buyers_email(
    events, start_worker, wire_client, event_listener, flower
):
    """Workers send no task events until a monitor asks: Flower asks by itself
    (`enable_events`, repeated), so a worker started after it shows its tasks too; `-E`
    sends them from the start."""
    base, handle = flower
    if events == "-E":
        worker = start_worker(args=("-E",))
    else:
        worker = start_worker(deployed=True)  # as deployed: no -E
        _until(lambda: "enabled by remote" in worker.log_text(), handle)
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30)))
    wire_client.send(
        BUYER_ACTION,
        message(
            "buyer.label_email_requested", order, ago(minutes=1), request_id="r-1", email=EMAIL
        ),
    )

    def seen() -> dict:
        tasks = json.loads(_get(f"{base}/api/tasks") or "{}")
        return {task["name"]: task for task in tasks.values()}

    _until(lambda: {"aftersales.order_event", "aftersales.buyer_action"} <= seen().keys(), handle)
    # What each message did: its task succeeded, with the worker's result (inbound messages
    # run in batches, worker/shell/batch.py, and still show as tasks of their own).
    _until(lambda: seen()["aftersales.buyer_action"].get("state") == "SUCCESS", handle)
    task = seen()["aftersales.buyer_action"]
    (ended,) = [
        line
        for line in worker.log_text().splitlines()
        if f"aftersales.buyer_action[{task['uuid']}] succeeded" in line
    ]
    assert f's: {task["result"]}"' in ended, (task, ended)  # the result the worker logged
    shown = json.dumps(seen()["aftersales.buyer_action"])
    assert EMAIL not in shown and "redacted" in shown
    assert EMAIL not in handle.log_text()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def _until(condition, handle, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert handle.alive(), handle.log_text()
        assert time.monotonic() < end, f"flower never got there:\n{handle.log_text()[-3000:]}"
        time.sleep(0.3)
