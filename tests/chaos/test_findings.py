"""What the chaos run found in the rules, reduced to the smallest reproduction.

Marked xfail(strict=True): each documents today's behaviour and turns into a failure
("XPASS") once the rules are fixed, so the marker is then removed (docs/chaos.md).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.chaos.harness import ChaosConfig, Processes
from tests.support.factories import T0, days, hours, order_placed, paid, shipped
from tests.support.processes import START_TIMEOUT, tail, wait_until
from tests.support.redis_restart import restart_embedded_redis
from tests.support.timeline import Timeline
from tests.support.wire import WireClient
from worker.adapters import keys
from worker.cli.embedded_redis import free_port, start_embedded_redis


def test_a_shipment_that_waits_for_the_payment_does_not_expire_the_order_first() -> None:
    """A prepaid order paid an hour after it was placed, shipped three days later. The
    shipment arrives before the payment (out of order, as the contract allows): it is
    held for `order.paid` (README, "Held, not refused"). When the payment comes, the
    order is paid, shipped, and was never cancelled: the payment happened long before
    the 48 h unpaid expiry.

    Today the held shipment first catches up the order's timers to its own event time,
    so the unpaid expiry fires (`order.cancelled` by platform) before the shipment is
    found to be waiting; the payment is then refunded as a payment for a cancelled order
    and the shipment refused (`order_cancelled`). In the opposite arrival order nothing
    of that happens: the outcome depends on arrival order."""
    order = Timeline("o-finding-1")
    placed = order_placed("o-finding-1", at=T0)
    order.send(placed, now=T0 + days(4))
    order.send(shipped("o-finding-1", at=T0 + days(3)), now=T0 + days(4))
    order.send(paid("o-finding-1", at=T0 + hours(1)), now=T0 + days(4))

    assert order.types() == []
    assert order.state.cancellation is None
    assert order.state.shipped_at == T0 + days(3)


@pytest.mark.integration
def test_a_worker_holding_a_message_survives_a_redis_restart(tmp_path: Path) -> None:
    """A worker holds a deadline task with an ETA (as it holds every armed one); Redis
    restarts (here gracefully, SIGTERM). The worker should reconnect and go on.

    Today Celery's `on_connection_error_after_connected` closes the broken connection,
    kombu's channel close restores the unacked messages through a client it builds from
    the connection that was just set to None, and `AttributeError: 'NoneType' object has
    no attribute 'hostname'` ends the worker ("Unrecoverable error")."""
    server = start_embedded_redis(tmp_path / "redis", port=free_port())
    processes = Processes(tmp_path, server.url, ChaosConfig())
    client = WireClient(server.url)
    try:
        worker = processes.start_worker()
        wait_until(lambda: processes.ready(worker), START_TIMEOUT, "worker never answered")
        # A deadline task with an ETA, as every armed deadline is: the worker holds it
        # unacked until then (an inbound fact's eta is ignored: test_poison.py).
        client.celery.send_task(
            "aftersales.deadline",
            args=["o-1", "unpaid_expiry:", None],
            queue="aftersales.deadlines",
            serializer="json",
            countdown=300,
        )
        worker.wait_for_log("received", 30)
        server = restart_embedded_redis(server, hard=False)
        wait_until(
            lambda: processes.ready(worker) or not worker.alive(),
            60,
            "the worker neither answered nor exited",
        )
        assert worker.alive(), tail(worker.log_text(), 20)
    finally:
        client.close()
        processes.stop()
        server.stop()


# Loaded by the worker below (and its forked pool) through PYTHONPATH: for one message,
# Redis "goes away" exactly when the chaos run's Redis kill -9 hit: the message's commit
# fails with a connection error, and so does the first publish of its retry's copy (Redis
# still down, or loading its AOF). Each fault strikes once: its flag file is removed.
FAULTS = """
import os
from pathlib import Path

import redis
from celery.canvas import Signature
from kombu.exceptions import OperationalError

from worker.service_layer.service import Service

FLAGS = Path(os.environ["CHAOS_FAULTS"])


def _once(name):
    try:
        (FLAGS / name).unlink()
    except FileNotFoundError:
        return False
    return True


_handle = Service.handle_message
_handle_many = Service.handle_many


def handle_many(self, *args, **kwargs):
    if _once("batch"):  # the batch fails first: its messages go Celery's way, one task each
        raise redis.exceptions.ConnectionError("injected: Redis went away under a batch")
    return _handle_many(self, *args, **kwargs)


def handle_message(self, *args, **kwargs):
    if _once("commit"):
        raise redis.exceptions.ConnectionError("injected: Redis went away")
    return _handle(self, *args, **kwargs)


_apply_async = Signature.apply_async


def apply_async(self, *args, **kwargs):
    if _once("republish"):
        raise OperationalError("injected: Redis is still down")
    return _apply_async(self, *args, **kwargs)


Service.handle_message = handle_message
Service.handle_many = handle_many
Signature.apply_async = apply_async
"""


@pytest.mark.integration
def test_a_retry_whose_copy_cannot_be_published_loses_no_message(tmp_path: Path) -> None:
    """Finding 6 (docs/chaos.md; chaos run, order c20261129-00011: its `order.placed`
    received, never committed, in no Redis key). A worker meets a transient error (Redis
    killed) and retries: Celery's `retry` publishes a copy and acks the original. When
    the copy cannot be published, Celery raises `Reject(requeue=False)` and the worker acks the
    original anyway: the message is gone. It must come back and be applied."""
    flags, site = tmp_path / "faults", tmp_path / "site"
    flags.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAULTS)
    server = start_embedded_redis(tmp_path / "redis", port=free_port())
    processes = Processes(tmp_path, server.url, ChaosConfig())
    path = [str(site), *filter(None, [processes.env.get("PYTHONPATH")])]
    processes.env.update(PYTHONPATH=os.pathsep.join(path), CHAOS_FAULTS=str(flags))
    client, store = WireClient(server.url), redis.Redis.from_url(server.url)
    try:
        worker = processes.start_worker()
        wait_until(lambda: processes.ready(worker), START_TIMEOUT, "worker never answered")
        (flags / "batch").touch()
        (flags / "commit").touch()
        (flags / "republish").touch()
        # Placed now (before 1.2 an order.placed older than AFTERSALES_RETENTION was
        # `order_expired`; now only an order with a tombstone is).
        now = datetime.now(UTC)
        placed = order_placed("o-finding-6", at=now).model_dump(mode="json", exclude_none=True)
        client.send("aftersales.order_event", placed)
        wait_until(
            lambda: not any(flags.iterdir()),
            60,
            lambda: "the faults never struck: " + tail(worker.log_text(), 20),
        )
        wait_until(
            lambda: store.exists(keys.order_state("o-finding-6")),
            60,
            lambda: "order.placed was lost: " + tail(worker.log_text(), 30),
        )
    finally:
        client.close()
        store.close()
        processes.stop()
        server.stop()
