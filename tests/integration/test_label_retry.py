"""The label task's retry while Redis restarts: the label is still made, the task not lost.

docs/chaos.md, finding 6: Celery's plain `retry` publishes a copy of the message and acks
the original; when the copy cannot be published (Redis down, or loading its AOF), Celery
raises `Reject(requeue=False)` and the worker acks the original once it reaches Redis
again. Here Redis dies (kill -9) at the moment a real worker's label task reads the order,
stays down past Celery's own publish retries, and comes back with its AOF.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from tests.chaos.harness import ChaosConfig, Processes
from tests.integration.wire_messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    SELLER_ACTION,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.processes import START_TIMEOUT, tail, wait_until
from tests.support.redis_restart import restart_embedded_redis
from tests.support.wire import WireClient
from worker.adapters.redis_store import RedisStore
from worker.cli.embedded_redis import free_port, start_embedded_redis

pytestmark = pytest.mark.integration

# Loaded by the worker (and its forked pool) through PYTHONPATH: the first time the label
# task reads the order named in LABEL_ORDER, Redis is killed under it (the flag file is
# removed first, so it strikes once), and the read meets the real connection error.
FAULTS = """
import os
import signal
from pathlib import Path

from worker.adapters.order_store import OrderStore

FLAG = Path(os.environ["LABEL_FAULT"])
_load = OrderStore.load


def load(self, order_id):
    if order_id == os.environ["LABEL_ORDER"]:
        try:
            FLAG.unlink()
        except FileNotFoundError:
            pass
        else:
            os.kill(int(os.environ["LABEL_REDIS_PID"]), signal.SIGKILL)
    return _load(self, order_id)


OrderStore.load = load
"""

OUTAGE = 4.0
"""Seconds Redis stays down after the task met the kill: longer than Celery's default
publish retries (about 1 s), as a restart with an AOF to load or a loaded machine is."""


def test_a_label_retry_during_a_redis_restart_still_makes_the_label(tmp_path: Path) -> None:
    site, flag, order = tmp_path / "site", tmp_path / "kill-redis", new_id("o-label-retry")
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAULTS)
    server = start_embedded_redis(tmp_path / "redis", port=free_port())
    processes = Processes(tmp_path, server.url, ChaosConfig())
    path = [str(site), *filter(None, [processes.env.get("PYTHONPATH")])]
    processes.env.update(
        PYTHONPATH=os.pathsep.join(path),
        LABEL_FAULT=str(flag),
        LABEL_ORDER=order,
        LABEL_REDIS_PID=str(server.pid),
    )
    wire = WireClient(server.url)
    try:
        worker = processes.start_worker()
        wait_until(lambda: processes.ready(worker), START_TIMEOUT, "worker never answered")
        _approved_drop_off(wire, server.url, order)  # its label task comes next
        flag.touch()
        request = _send_approval(wire, server.url, order)
        wait_until(
            lambda: not flag.exists(), 60, lambda: "no label task: " + tail(worker.log_text())
        )
        worker.wait_for_log("label generation failed, will retry", 30)
        time.sleep(OUTAGE)  # the outage itself: Redis is down this long, on purpose
        server = restart_embedded_redis(server)

        client = redis.Redis.from_url(server.url)
        store = RedisStore(client)

        def labelled() -> bool:
            state = store.load(order).state
            return state is not None and state.returns[request].label is not None

        wait_until(labelled, 90, lambda: "the label task was lost: " + tail(worker.log_text(), 40))
        client.close()
    finally:
        wire.close()
        processes.stop()
        server.stop()


def _approved_drop_off(wire: WireClient, url: str, order: str) -> None:
    """A delivered UK order with a drop-off return requested (applied before we go on)."""
    delivered_at = ago(days=2)
    placed_at = delivered_at - timedelta(days=3)
    wire.send(ORDER_EVENT, placed(order, placed_at, marketplace="UK", currency="GBP"))
    wire.send(ORDER_EVENT, message("order.paid", order, placed_at + timedelta(minutes=10)))
    wire.send(
        ORDER_EVENT,
        message("order.shipped", order, placed_at + timedelta(days=1), tracking_number="OUT-1"),
    )
    wire.send(ORDER_EVENT, message("order.delivered", order, delivered_at))
    store = RedisStore(redis.Redis.from_url(url))
    wait_until(
        lambda: getattr(store.load(order).state, "delivered_at", None) is not None,
        30,
        "the delivery was never applied",
    )
    request = f"rr-{order}"
    wire.send(
        BUYER_ACTION,
        message("buyer.return_requested", order, ago(hours=1), request_id=request,
                kind="return_and_refund", reason="changed_mind", method="drop_off"),
    )  # fmt: skip
    wait_until(
        lambda: request in getattr(store.load(order).state, "returns", {}),
        30,
        "the return request was never applied",
    )
    store.client.close()


def _send_approval(wire: WireClient, url: str, order: str) -> str:
    request = f"rr-{order}"
    wire.send(SELLER_ACTION, message("seller.return_approved", order, ago(minutes=10),
                                     request_id=request))  # fmt: skip
    return request
