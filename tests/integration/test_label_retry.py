"""The label task's retry when Redis goes away: the label is still made, the task not lost.

docs/chaos.md, finding 6: Celery's plain `retry` publishes a copy of the message and acks
the original; when the copy cannot be published (Redis down, or loading its AOF), Celery
raises `Reject(requeue=False)` and the worker acks the original once it reaches Redis
again. Two real workers' runs: the mechanism itself (the copy's first publish fails, Redis
stays up, so the reject reaches it), and Redis killed under the label task, down past
Celery's own publish retries, and restarted with its AOF.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from tests.chaos.harness import ChaosConfig, Processes
from tests.support.messages import (
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
from worker.cli.embedded_redis import EmbeddedRedis, free_port, start_embedded_redis

pytestmark = pytest.mark.integration

# Loaded by the worker (and its forked pool) through PYTHONPATH. Each fault strikes once
# (its flag file is removed first), when the label task reads the order named in
# LABEL_ORDER: "kill" kills Redis under it (the read meets the real connection error);
# "outage" raises that error without a kill, and "republish" fails the first publish of
# the retry's copy, as a Redis still down or loading its AOF would.
FAULTS = """
import os
import signal
from pathlib import Path

import redis
from celery.canvas import Signature
from kombu.exceptions import OperationalError

from worker.adapters.order_store import OrderStore

FLAGS = Path(os.environ["LABEL_FAULTS"])
_load = OrderStore.load
_apply_async = Signature.apply_async


def _once(name):
    try:
        (FLAGS / name).unlink()
    except FileNotFoundError:
        return False
    return True


def load(self, order_id):
    if order_id == os.environ["LABEL_ORDER"]:
        if _once("kill"):
            os.kill(int(os.environ["LABEL_REDIS_PID"]), signal.SIGKILL)
        elif _once("outage"):
            raise redis.exceptions.ConnectionError("injected: Redis went away")
    return _load(self, order_id)


def apply_async(self, *args, **kwargs):
    if self.task == "aftersales.label" and _once("republish"):
        raise OperationalError("injected: Redis is still down")
    return _apply_async(self, *args, **kwargs)


OrderStore.load = load
Signature.apply_async = apply_async
"""

OUTAGE = 4.0
"""Seconds Redis stays down after the task met the kill: longer than Celery's default
publish retries (about 1 s), as a restart with an AOF to load or a loaded machine is."""


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[World]:
    """An embedded Redis and a real worker loading FAULTS; no fault armed yet."""
    site, flags, order = tmp_path / "site", tmp_path / "faults", new_id("o-label-retry")
    site.mkdir()
    flags.mkdir()
    (site / "sitecustomize.py").write_text(FAULTS)
    server = start_embedded_redis(tmp_path / "redis", port=free_port())
    processes = Processes(tmp_path, server.url, ChaosConfig())
    path = [str(site), *filter(None, [processes.env.get("PYTHONPATH")])]
    processes.env.update(
        PYTHONPATH=os.pathsep.join(path),
        LABEL_FAULTS=str(flags),
        LABEL_ORDER=order,
        LABEL_REDIS_PID=str(server.pid),
    )
    world = World(server, processes, WireClient(server.url), flags, order)
    try:
        worker = processes.start_worker()
        wait_until(lambda: processes.ready(worker), START_TIMEOUT, "worker never answered")
        _delivered_with_a_drop_off_return(world.wire, server.url, order)
        yield world
    finally:
        world.wire.close()
        processes.stop()
        world.server.stop()


@dataclass
class World:
    server: EmbeddedRedis
    processes: Processes
    wire: WireClient
    flags: Path
    order: str

    def arm(self, *faults: str) -> None:
        for fault in faults:
            (self.flags / fault).touch()

    def struck(self) -> bool:
        return not any(self.flags.iterdir())

    def log(self, lines: int = 40) -> str:
        return "\n".join(tail(worker.log_text(), lines) for worker in self.processes.all)

    def wait_for_label(self) -> None:
        """Until the order records the label; a worker that exits (Celery's reconnect
        after a Redis restart can end it, docs/chaos.md finding 2) is started again, as a
        supervisor would, and the new one gives back what the dead one had taken."""
        client = redis.Redis.from_url(self.server.url)
        store = RedisStore(client)

        def labelled() -> bool:
            self.processes.replace_dead()
            state = store.load(self.order).state
            return state is not None and state.returns[f"rr-{self.order}"].label is not None

        try:
            wait_until(labelled, 90, lambda: "the label task was lost: " + self.log())
        finally:
            client.close()


def test_a_label_retry_whose_copy_cannot_be_published_still_makes_the_label(faulty: World):
    faulty.arm("outage", "republish")
    _approve(faulty.wire, faulty.order)  # its label task comes next

    wait_until(faulty.struck, 60, lambda: "the faults never struck: " + faulty.log())
    faulty.wait_for_label()


def test_a_label_retry_during_a_redis_restart_still_makes_the_label(faulty: World):
    faulty.arm("kill")
    _approve(faulty.wire, faulty.order)

    wait_until(faulty.struck, 60, lambda: "no label task: " + faulty.log())
    faulty.processes.workers[0].wait_for_log("label generation failed, will retry", 30)
    time.sleep(OUTAGE)  # the outage itself: Redis is down this long, on purpose
    faulty.server = restart_embedded_redis(faulty.server)
    faulty.wait_for_label()


def _delivered_with_a_drop_off_return(wire: WireClient, url: str, order: str) -> None:
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


def _approve(wire: WireClient, order: str) -> None:
    wire.send(SELLER_ACTION, message("seller.return_approved", order, ago(minutes=10),
                                     request_id=f"rr-{order}"))  # fmt: skip
