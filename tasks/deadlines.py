"""`aftersales.deadline` fires one deadline, `aftersales.tick` runs the schedule: both are
entry points to worker/scheduler.py that only choose retry or not."""

from __future__ import annotations

from celery import Task

from tasks.errors import TRANSIENT, retry_later
from tasks.typed import task
from worker import runtime
from worker.logging import bind
from worker.topology import DEADLINE_TASK, TICK_TASK


@task(name=DEADLINE_TASK, bind=True, max_retries=None)
def fire_deadline(
    self: Task,
    order_id: str,
    deadline_id: str,
    due_at: str | None = None,
    barrier: bool = False,
) -> str:
    """Fire one deadline of one order. `barrier` is set once it has passed the inbound queue."""
    bind(order_id=order_id, deadline_id=deadline_id)
    scheduler = runtime.scheduler()
    try:
        outcome = scheduler.fire(order_id, deadline_id, due_at, barrier)
    except TRANSIENT as exc:
        raise retry_later(self, exc) from exc
    except Exception:
        scheduler.failed(order_id, deadline_id)
        raise
    scheduler.after_firing(order_id, deadline_id, due_at, outcome)
    return outcome.status if not outcome.detail else f"{outcome.status}:{outcome.detail}"


@task(name=TICK_TASK, ignore_result=True)
def tick() -> dict[str, int]:
    """Arm deadlines entering the horizon, re-send overdue ones, relay the outbox."""
    return runtime.scheduler().tick()


__all__ = ["fire_deadline", "tick"]
