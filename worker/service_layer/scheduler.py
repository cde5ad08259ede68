"""The durable deadline schedule in motion: the beat tick (arm, sweep, relay), one firing,
and what to do after it (docs/design.md: deadlines, backlog safety).

The tasks of tasks/deadlines.py call in here and only choose retry or not. Deadline tasks
are sent by name, so this module needs neither the tasks nor Celery itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas import channels
from schemas.channels import DEADLINE_BATCH_TASK, DEADLINE_TASK
from schemas.types import format_timestamp, parse_timestamp
from worker.adapters.redis_store import RedisStore
from worker.logging import get_logger
from worker.rules.state import Deadline
from worker.service_layer.backlog import BARRIER, Gate
from worker.service_layer.ports import Backlog, BacklogReader
from worker.service_layer.service import Firing, Outcome, Service
from worker.settings import Settings

log = get_logger("aftersales.deadlines")

TASK_ID_NAMESPACE = uuid.UUID("2d0b9a4e-5c1f-5e8a-8f3b-0a7c6e4d2b19")
"""Task ids of armed deadlines derive from (order, deadline, due): one task per arming."""
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
RELAY_BATCH = 1_000
"""Outbox entries relayed per tick at most: a backlog after an outage drains over ticks."""

BATCH_WIDTH = 0.2
"""Seconds of due times one batch task covers. It runs at its last member's due time, so
this is the most a member is held back for the sake of batching (well inside 1 s p99)."""
BATCH_MAX = 100
"""Members per batch task at most: enough that Celery's per-task cost and the batch's five
round trips are shared by many (a few percent), few enough that a batch takes ~0.1 s and
a burst spreads over every pool process."""

Member = tuple[str, str, str | None]
"""One deadline of a batch task, as sent: (order id, deadline id, due time or None)."""

SendTask = Callable[..., Any]
"""Celery's `app.send_task(name, args, **options)`."""


@dataclass
class Scheduler:
    store: RedisStore
    service: Service
    queues: BacklogReader
    send_task: SendTask
    settings: Settings
    clock: Callable[[], datetime]

    # --- one firing ------------------------------------------------------------------------

    def fire(self, order_id: str, deadline_id: str, due_at: str | None, barrier: bool) -> Outcome:
        """Fire one deadline; `barrier` once it has passed the inbound queue."""
        due = parse_timestamp(due_at) if due_at else None
        loaded, backlog = self.queues.load_with_backlog(order_id)
        gate = self._gate(order_id, barrier, backlog)
        return self.service.fire_deadline(order_id, deadline_id, due, gate=gate, loaded=loaded)

    def fire_batch(self, members: Sequence[Member]) -> dict[str, int]:
        """Fire a batch task's deadlines: orders and backlogs read in one round trip, each
        gated and decided as a single firing is, the commits in one round trip; what must
        wait or is early is handed back as a single firing (`after_firing`)."""
        rows = self.queues.load_many_with_backlog([order_id for order_id, _, _ in members])
        firings = [
            Firing(order_id, deadline_id, parse_timestamp(due) if due else None,
                   self._gate(order_id, False, backlog), loaded)
            for (order_id, deadline_id, due), (loaded, backlog) in zip(members, rows, strict=True)
        ]  # fmt: skip
        outcomes = self.service.fire_deadlines(firings)
        counts: dict[str, int] = {}
        for (order_id, deadline_id, due), outcome in zip(members, outcomes, strict=True):
            self.after_firing(order_id, deadline_id, due, outcome)
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts

    def after_firing(
        self, order_id: str, deadline_id: str, due_at: str | None, outcome: Outcome
    ) -> None:
        if outcome.status == "waiting":
            # Through the tail of the inbound queue first, then re-checked from the deadlines
            # queue.
            barrier = outcome.detail == BARRIER
            self.send_task(
                DEADLINE_TASK,
                (order_id, deadline_id, due_at, True),
                queue=channels.INBOUND if barrier else channels.DEADLINES,
                countdown=None if barrier else WAIT_RETRY,
            )
        elif outcome.status == "not_due":  # early (a clock ahead, a moved deadline): at its time
            self.send(order_id, deadline_id, parse_timestamp(outcome.detail))
        elif outcome.status == "stale":
            self.store.release(order_id, deadline_id)

    def failed(self, order_id: str, deadline_id: str) -> None:
        """A bug, not an outage: let the sweep send it again, backing off, rather than leave
        it held by this worker until the holding expires."""
        self.store.release(order_id, deadline_id, even_if_armed=True)

    def failed_batch(self, members: Sequence[Member]) -> None:
        """A batch failed on a bug: every member goes back to the sweep, which re-sends
        each on its own (fired ones are no longer armed: their re-send finds them stale)."""
        for order_id, deadline_id, _ in members:
            self.store.release(order_id, deadline_id, even_if_armed=True)

    def send_armed(self, armed: Sequence[tuple[str, str, datetime]]) -> int:
        """Send armed deadlines as tasks: those due within the same BATCH_WIDTH together,
        BATCH_MAX at most, as one batch task at the latest member's time; returns tasks."""
        now, width_ms = self.clock().timestamp(), round(BATCH_WIDTH * 1000)
        buckets: dict[int, list[tuple[str, str, datetime]]] = {}
        for order_id, deadline_id, due in armed:  # already due: one bucket, now
            # whole milliseconds: a float division by 0.2 puts boundaries a hair off
            bucket = round(max(due.timestamp(), now) * 1000) // width_ms
            buckets.setdefault(bucket, []).append((order_id, deadline_id, due))
        sent = 0
        for due_together in buckets.values():
            for start in range(0, len(due_together), BATCH_MAX):
                self._send_some(due_together[start : start + BATCH_MAX])
                sent += 1
        return sent

    def _send_some(self, chunk: list[tuple[str, str, datetime]]) -> None:
        if len(chunk) == 1:
            self.send(*chunk[0])
            return
        members = [[o, d, format_timestamp(due)] for o, d, due in chunk]
        # Arming a deadline twice sends the same task id (the same members, the same times).
        name = "|".join("|".join(member) for member in members)
        self.send_task(
            DEADLINE_BATCH_TASK,
            (members,),
            eta=max(due for _, _, due in chunk),
            task_id=str(uuid.uuid5(TASK_ID_NAMESPACE, name)),
            queue=channels.DEADLINES,
        )

    def send(self, order_id: str, deadline_id: str, due: datetime | None) -> None:
        due_text = format_timestamp(due) if due is not None else None
        task_id = str(uuid.uuid5(TASK_ID_NAMESPACE, f"{order_id}|{deadline_id}|{due_text}"))
        self.send_task(
            DEADLINE_TASK,
            (order_id, deadline_id, due_text),
            eta=due,
            task_id=task_id,
            queue=channels.DEADLINES,
        )

    def _gate(
        self, order_id: str, after_barrier: bool, backlog: Backlog | None
    ) -> Callable[[Deadline], str | None]:
        """The backlog gate of one firing; `backlog` when it was read with the order already."""
        # A backlog read in the same round trip as the order is used as is.
        read: Callable[[str], Backlog] = (
            (lambda _: backlog) if backlog is not None else self.queues.backlog
        )
        gate = Gate(
            backlog=read, stale_after=self.settings.visibility_timeout * 2, clock=self.clock
        )
        return lambda deadline: gate(order_id, deadline, after_barrier)

    # --- the tick --------------------------------------------------------------------------

    def tick_has_work(self) -> bool:
        """Whether `tick` would arm, re-send or relay anything now (one read): beat sends
        no tick while it would not (worker/shell/beat.py)."""
        now = self.clock()
        return self.store.tick_has_work(
            now + self.settings.deadline_horizon, now, now - OUTBOX_RELAY_AFTER
        )

    def tick(self) -> dict[str, int]:
        """Arm deadlines entering the horizon, re-send overdue ones, relay the outbox."""
        settings, store, now = self.settings, self.store, self.clock()
        grace = max(2.0, 2 * settings.sweep_interval.total_seconds())
        armed = store.arm_due(
            now + settings.deadline_horizon, ARM_BATCH, recheck_after=grace, now=now
        )
        tasks = self.send_armed(armed)
        # Messages waiting in the deadlines queue: while there are, a due deadline no worker
        # has received yet is presumed queued behind them, not lost (see sweep.lua).
        overdue = store.lost_armed(
            now,
            grace,
            SWEEP_BATCH,
            RESEND_BACKOFF_CAP,
            settings.visibility_timeout.total_seconds(),
            queued=self.queues.queued(channels.DEADLINES),
        )
        for order_id, deadline_id in overdue:
            self.send(order_id, deadline_id, None)
        stale = store.stale_outbox(now - OUTBOX_RELAY_AFTER, limit=RELAY_BATCH)
        left = self.service.outbox.publish(stale) if stale else 0
        if armed or overdue or stale:  # an idle tick is silent: one runs every second
            log.info(
                "sweep",
                armed=len(armed),
                tasks=tasks,
                overdue=len(overdue),
                relayed=len(stale) - left,
            )
        return {"armed": len(armed), "overdue": len(overdue), "relayed": len(stale) - left}
