"""Backlog safety: a deadline never overtakes an inbound message that happened before it.

Three places a message can be while a deadline comes due:
1. still in the inbound queue: the deadline sends a barrier task to the tail of
   `aftersales.inbound` and fires only when the barrier comes out, so everything queued
   before it has been taken by a worker;
2. taken by a worker but not yet committed: the fetch that takes it records it in the
   order's in-flight hash in the same step (worker/shell/fetch.lua; with a separate
   broker, the consumer does as it receives it, before the prefetch buffer:
   worker/shell/hooks.py), and the commit removes it; the deadline waits while one is
   there;
3. parked in the order's state waiting for an earlier fact: the rules defer the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.types import parse_timestamp
from worker.logging import get_logger
from worker.rules.state import Deadline
from worker.service_layer.ports import Backlog

log = get_logger("aftersales.backlog")

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's Redis transport keeps one list per priority step: name, name\\x06\\x163, ..."""

WaitReason = Literal["barrier", "inflight"]
"""Why a due deadline waits: messages are queued before it (it goes round through the
inbound queue's tail first), or an earlier message of its order is in flight."""

BARRIER: WaitReason = "barrier"
INFLIGHT: WaitReason = "inflight"


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


@dataclass
class Gate:
    """Decides whether a due deadline may fire now (None) or must wait (the reason)."""

    backlog: Callable[[str], Backlog]
    stale_after: timedelta
    clock: Callable[[], datetime]

    def __call__(self, order_id: str, deadline: Deadline, after_barrier: bool) -> WaitReason | None:
        if deadline.kind == "hold":  # processing-time timer of a parked message
            return None
        depth, inflight = self.backlog(order_id)  # inbound queue depth, in-flight messages
        if not after_barrier and depth > 0:
            return BARRIER
        if not inflight:
            return None
        horizon = self.clock() - self.stale_after
        for task_id, (occurred, received) in inflight.items():
            if received < horizon:
                log.warning("ignoring stale in-flight entry", order_id=order_id, task_id=task_id)
                continue
            if occurred <= deadline.due_at:
                return INFLIGHT
        return None


def order_of(args: Any) -> str | None:
    """The order an inbound task's message names (its one argument's `order_id`), if it
    names one as a string; validation comes later."""
    if not isinstance(args, list | tuple) or len(args) != 1 or not isinstance(args[0], dict):
        return None
    order_id = args[0].get("order_id")
    return order_id if isinstance(order_id, str) else None


def message_facts(args: Any) -> tuple[str, datetime] | None:
    """order_id and occurred_at of an inbound task's message, or None if unreadable."""
    order_id = order_of(args)
    if not order_id:
        return None
    occurred = args[0].get("occurred_at")
    try:
        return order_id, parse_timestamp(occurred)
    except ValueError:
        return None
