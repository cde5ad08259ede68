"""Deadline firing (`aftersales.deadline`) and the beat tick (`aftersales.tick`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task

from schemas.types import format_timestamp, parse_timestamp
from tasks.errors import TRANSIENT, backoff
from worker import runtime, topology
from worker.adapters.redis_store import Backlog, Loaded
from worker.app import app
from worker.backlog import BARRIER, Gate, queue_keys
from worker.logging import bind, get_logger
from worker.rules.state import Deadline
from worker.settings import get_settings

log = get_logger("aftersales.deadlines")

TASK_ID_NAMESPACE = uuid.UUID("2d0b9a4e-5c1f-5e8a-8f3b-0a7c6e4d2b19")
WAIT_RETRY = 0.25
"""Seconds between checks while an earlier message of the order is still in flight: a
message takes milliseconds to commit, so this bounds the extra lateness it causes."""
ARM_BATCH = 20_000
"""Deadlines armed per tick at most; the rest wait for the next tick (one second)."""
SWEEP_BATCH = 1_000
"""Lost deadlines re-sent per tick at most: re-sends are rare (a worker died), so this only
bounds a tick after a crash of a worker that held many."""
RESEND_BACKOFF_CAP = 60.0
"""Longest wait (s) between two re-sends of one lost deadline: nobody consumes it yet."""
OUTBOX_RELAY_AFTER = timedelta(seconds=5)
"""An outbox entry not confirmed this long after its commit is published again."""
INBOUND_KEYS = queue_keys(topology.INBOUND)
DEADLINE_KEYS = queue_keys(topology.DEADLINES)


def _broker_backlog(order_id: str) -> tuple[int, dict[str, Any]]:
    """Queue depth from the broker itself (RabbitMQ, or Redis on another database)."""
    with app.pool.acquire(block=True) as connection, connection.channel() as channel:
        try:
            declared = channel.queue_declare(topology.INBOUND, passive=True)
            depth = int(declared.message_count)
        except connection.channel_errors:  # no such queue (a flushed broker): nothing waits
            depth = 0
    return depth, runtime.store().inflight(order_id)


def _load_for_firing(order_id: str) -> tuple[Loaded | None, Backlog | None]:
    """Queues on the store's Redis: the order and its backlog in one round trip, else
    neither here (the service loads the order, the gate asks the broker)."""
    settings = get_settings()
    if settings.broker_url != settings.redis_url:
        return None, None
    return runtime.store().load_for_firing(order_id, INBOUND_KEYS)


def _gate(order_id: str, after_barrier: bool, backlog: Backlog | None = None) -> Any:
    """The backlog gate of one firing; `backlog` when it was read with the order already."""
    settings = get_settings()
    read: Callable[[str], Backlog]
    if backlog is not None:
        read = lambda _: backlog  # noqa: E731 - read in the same round trip as the order
    elif settings.broker_url == settings.redis_url:
        read = lambda oid: runtime.store().backlog(oid, INBOUND_KEYS)  # noqa: E731
    else:
        read = _broker_backlog
    gate = Gate(
        backlog=read,
        stale_after=settings.visibility_timeout * 2,
        clock=runtime.utcnow,
    )
    return lambda deadline: gate(order_id, deadline, after_barrier)


@app.task(name="aftersales.deadline", bind=True, max_retries=None)
def fire_deadline(
    self: Task,
    order_id: str,
    deadline_id: str,
    due_at: str | None = None,
    barrier: bool = False,
) -> str:
    """Fire one deadline of one order. `barrier` is set once it has passed the inbound queue."""
    bind(order_id=order_id, deadline_id=deadline_id)
    due = parse_timestamp(due_at) if due_at else None
    try:
        loaded, backlog = _load_for_firing(order_id)
        outcome = runtime.service().fire_deadline(
            order_id, deadline_id, due, gate=_gate(order_id, barrier, backlog), loaded=loaded
        )
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except Exception:
        # A bug, not an outage: let the sweep send it again, backing off, rather than
        # leave it held by this worker until the holding expires.
        runtime.store().release(order_id, deadline_id, even_if_armed=True)
        raise
    if outcome.status == "waiting":
        # Through the tail of the inbound queue first, then re-checked from the deadlines queue.
        queue = topology.INBOUND if outcome.detail == BARRIER else topology.DEADLINES
        countdown = None if outcome.detail == BARRIER else WAIT_RETRY
        fire_deadline.apply_async(
            (order_id, deadline_id, due_at, True), queue=queue, countdown=countdown
        )
    elif outcome.status == "not_due":  # early (a clock ahead, a moved deadline): at its time
        send_deadline(order_id, deadline_id, parse_timestamp(outcome.detail))
    elif outcome.status == "stale":
        runtime.store().release(order_id, deadline_id)
    return outcome.status if not outcome.detail else f"{outcome.status}:{outcome.detail}"


def send_deadline(order_id: str, deadline_id: str, due: Any | None) -> None:
    due_text = format_timestamp(due) if due is not None else None
    task_id = str(uuid.uuid5(TASK_ID_NAMESPACE, f"{order_id}|{deadline_id}|{due_text}"))
    fire_deadline.apply_async(
        (order_id, deadline_id, due_text), eta=due, task_id=task_id, queue=topology.DEADLINES
    )


def _deadlines_queued() -> int:
    """Messages waiting in the deadlines queue: while there are, a due deadline no worker
    has received yet is presumed queued behind them, not lost (see sweep.lua)."""
    settings = get_settings()
    if settings.broker_url == settings.redis_url:
        return runtime.store().queue_depth(DEADLINE_KEYS)
    # A channel of its own: a refused passive declare closes it (AMQP).
    with app.pool.acquire(block=True) as connection, connection.channel() as channel:
        try:
            return int(channel.queue_declare(topology.DEADLINES, passive=True).message_count)
        except connection.channel_errors:  # no such queue: nothing is waiting in it
            return 0


@app.task(name="aftersales.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Arm deadlines entering the horizon, re-send overdue ones, relay the outbox."""
    settings = get_settings()
    store, now = runtime.store(), runtime.utcnow()
    grace = max(2.0, 2 * settings.sweep_interval.total_seconds())
    armed = store.arm_due(now + settings.deadline_horizon, ARM_BATCH, recheck_after=grace)
    for order_id, deadline_id, due in armed:
        send_deadline(order_id, deadline_id, due)
    overdue = store.lost_armed(
        now, grace, SWEEP_BATCH, RESEND_BACKOFF_CAP, settings.visibility_timeout.total_seconds(),
        queued=_deadlines_queued(),
    )
    for order_id, deadline_id in overdue:
        send_deadline(order_id, deadline_id, None)
    stale = store.stale_outbox(now - OUTBOX_RELAY_AFTER, limit=1000)
    left = runtime.service().publish_entries(stale) if stale else 0
    if armed or overdue or stale:  # an idle tick is silent: one runs every second
        log.info("sweep", armed=len(armed), overdue=len(overdue), relayed=len(stale) - left)
    return {"armed": len(armed), "overdue": len(overdue), "relayed": len(stale) - left}


__all__ = ["Deadline", "fire_deadline", "send_deadline", "tick"]
