"""`aftersales.deadline` fires one deadline, `aftersales.deadline_batch` the deadlines due
together, `aftersales.tick` runs the schedule: entry points to
worker/service_layer/scheduler.py that only choose retry or not."""

from __future__ import annotations

from celery import Task

from tasks.errors import TRANSIENT, retry_later
from tasks.typed import task
from worker import runtime
from worker.adapters.topology import DEADLINE_BATCH_TASK, DEADLINE_TASK, TICK_TASK
from worker.logging import bind
from worker.service_layer.scheduler import tally


@task(name=DEADLINE_TASK, bind=True, max_retries=None)
def fire_deadline(
    self: Task, order_id: str, deadline_id: str, due_at: str | None = None, barrier: bool = False
) -> str:
    """Fire one deadline of one order. `barrier` is set once it has passed the inbound queue."""
    bind(order_id=order_id, deadline_id=deadline_id)
    scheduler = runtime.scheduler()
    try:
        return scheduler.fire(order_id, deadline_id, due_at, barrier).summary()
    except TRANSIENT as exc:
        raise retry_later(self, exc) from exc
    except Exception:
        scheduler.failed(order_id, deadline_id)  # a bug: the sweep sends it again
        raise


@task(name=DEADLINE_BATCH_TASK, bind=True, max_retries=None)
def fire_deadlines(self: Task, members: list[list[str | None]]) -> dict[str, int]:
    """Fire the deadlines the tick grouped by due time: [[order, deadline, due], ...].

    An outage retries the whole batch: members fired already are then stale (fenced). A
    worker killed midway leaves the rest to the redelivered batch and the sweep, which
    re-sends each member on its own; the version-checked commit fires each once."""
    scheduler = runtime.scheduler()
    batch = [(str(order_id), str(deadline_id), due) for order_id, deadline_id, due in members]
    try:
        return tally(scheduler.fire_batch(batch))
    except TRANSIENT as exc:
        raise retry_later(self, exc) from exc
    except Exception:
        scheduler.failed_batch(batch)
        raise


@task(name=TICK_TASK, ignore_result=True)
def tick() -> dict[str, int]:
    """Arm deadlines entering the horizon, re-send overdue ones, relay the outbox."""
    return runtime.scheduler().tick()


__all__ = ["fire_deadline", "fire_deadlines", "tick"]
