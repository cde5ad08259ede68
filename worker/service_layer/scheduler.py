"""The durable deadline schedule in motion: the beat tick (arm, sweep, relay), and a
deadline's firing from its task to its commit (docs/design.md: deadlines, backlog safety).

A firing: the order is read with its backlog (one round trip where the queues allow it),
the deadline fenced (gone or moved: stale; early: not due) and gated (backlog safety),
the service fires it, and the scheduler sends it again later or releases it. The tasks of
tasks/deadlines.py call in here and only choose retry or not. Deadline tasks are sent by
name, so this module needs neither the tasks nor Celery itself; it reaches Redis only
through the ports (ports.Schedule, ports.BacklogReader, ports.PendingOutbox).
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
from worker.logging import get_logger
from worker.rules.state import Deadline
from worker.service_layer.backlog import BARRIER, Gate
from worker.service_layer.ports import Backlog, BacklogReader, Loaded, PendingOutbox, Schedule
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
bounds a tick after a crash of a worker that claimed many."""
RESEND_BACKOFF_CAP = 60.0
"""Longest wait (s) between two re-sends of one lost deadline: nobody consumes it yet."""
OUTBOX_RELAY_AFTER = timedelta(seconds=5)
"""An outbox entry not confirmed this long after its commit is published again."""
RELAY_BATCH = 1_000
"""Outbox entries relayed per tick at most: a backlog after an outage drains over ticks."""

BATCH_WIDTH = 0.2
"""Seconds of due times one batch task covers. It runs at its last member's due time, so
this is the most a member is delayed for the sake of batching (well inside 1 s p99)."""
BATCH_MAX = 400
"""Members per batch task at most: enough that Celery's per-task cost, the batch's round
trips and the pool's hand-over between tasks are shared by many, few enough that a batch
takes ~0.1 s and a burst (several batches each BATCH_WIDTH) spreads over every pool
process. 400 fired a 30,000-deadline burst 9-22 % faster than 100, a 100,000 one as
fast (bench/README.md, "Firing: batches of 400")."""

Member = tuple[str, str, str | None]
"""One deadline of a batch task, as sent: (order id, deadline id, due time or None)."""

SendTask = Callable[..., Any]
"""Celery's `app.send_task(name, args, **options)`."""


@dataclass
class Scheduler:
    schedule: Schedule
    outbox: PendingOutbox
    service: Service
    queues: BacklogReader
    send_task: SendTask
    settings: Settings
    clock: Callable[[], datetime]

    # --- firing ------------------------------------------------------------------------------

    def fire(self, order_id: str, deadline_id: str, due_at: str | None, barrier: bool) -> Outcome:
        """Fire one deadline task's deadline, then send it again later or release it;
        `barrier` once it has passed the inbound queue."""
        due = parse_timestamp(due_at) if due_at else None
        loaded, backlog = self.queues.load_with_backlog(order_id)
        checked = self._check(order_id, deadline_id, due, loaded, backlog, barrier)
        outcome = (
            self._held(deadline_id, checked)
            if isinstance(checked, Outcome)
            else self.service.fire(order_id, checked, loaded)
        )
        self._after(order_id, deadline_id, due_at, outcome)
        return outcome

    def fire_batch(self, members: Sequence[Member]) -> list[Outcome]:
        """Fire a batch task's deadlines: orders and backlogs read in one round trip, each
        fenced and gated as a single firing is, the commits in one round trip; what must
        wait or is early is handed back as a single firing."""
        rows = self.queues.load_many_with_backlog([order_id for order_id, _, _ in members])
        outcomes: list[Outcome] = []
        firings: list[tuple[int, Firing]] = []
        for (order_id, deadline_id, due), (loaded, backlog) in zip(members, rows, strict=True):
            due_at = parse_timestamp(due) if due else None
            checked = self._check(order_id, deadline_id, due_at, loaded, backlog, False)
            if not isinstance(checked, Outcome):
                firings.append((len(outcomes), Firing(order_id, checked, loaded)))
                checked = Outcome("stale")  # replaced by the firing's outcome below
            else:
                self._held(deadline_id, checked)
            outcomes.append(checked)
        fired = self.service.fire_many([firing for _, firing in firings])
        for (index, _), outcome in zip(firings, fired, strict=True):
            outcomes[index] = outcome
        for (order_id, deadline_id, due), outcome in zip(members, outcomes, strict=True):
            self._after(order_id, deadline_id, due, outcome)
        return outcomes

    def _held(self, deadline_id: str, outcome: Outcome) -> Outcome:
        """A firing fenced or gated here (stale, not_due, waiting), told to the metrics."""
        kind = deadline_id.partition(":")[0]  # ids are `kind:ref`
        self.service.observer.deadline_fired(kind, outcome.status, None)
        return outcome

    def _check(
        self,
        order_id: str,
        deadline_id: str,
        due_at: datetime | None,
        loaded: Loaded,
        backlog: Backlog | None,
        after_barrier: bool,
    ) -> Deadline | Outcome:
        """The deadline if it may fire now, else why not: fencing (gone or moved: stale),
        early (not_due, with its time), backlog safety (waiting, with the gate's reason).
        `backlog`: read with the order already, else None (read here if the gate needs it)."""
        deadline = loaded.state.deadlines.get(deadline_id) if loaded.state else None
        if deadline is None or (due_at is not None and deadline.due_at != due_at):
            return Outcome("stale")
        if deadline.due_at > self.clock():  # an early timer: re-sent for its time
            return Outcome("not_due", retry_at=deadline.due_at)
        read: Callable[[str], Backlog] = (
            (lambda _: backlog) if backlog is not None else self.queues.backlog
        )
        gate = Gate(
            backlog=read, stale_after=self.settings.visibility_timeout * 2, clock=self.clock
        )
        wait = gate(order_id, deadline, after_barrier)
        return Outcome("waiting", wait=wait) if wait else deadline

    def _after(self, order_id: str, deadline_id: str, due_at: str | None, outcome: Outcome) -> None:
        """After a firing: waiting, through the tail of the inbound queue first (barrier)
        or re-checked from the deadlines queue shortly; early, at its time; stale, no longer
        claimed by anyone."""
        if outcome.status == "waiting":
            barrier = outcome.wait == BARRIER
            self.send_task(
                DEADLINE_TASK,
                (order_id, deadline_id, due_at, True),
                queue=channels.INBOUND if barrier else channels.DEADLINES,
                countdown=None if barrier else WAIT_RETRY,
            )
        elif outcome.status == "not_due" and outcome.retry_at is not None:
            self.send(order_id, deadline_id, outcome.retry_at)
        elif outcome.status == "stale":
            self.schedule.release(order_id, deadline_id)

    def failed(self, order_id: str, deadline_id: str) -> None:
        """A bug, not an outage: let the sweep send it again, backing off, rather than leave
        it claimed by this worker until the claim is too old."""
        self.schedule.release(order_id, deadline_id, even_if_armed=True)

    def failed_batch(self, members: Sequence[Member]) -> None:
        """A batch failed on a bug: every member goes back to the sweep, which re-sends
        each on its own (fired ones are no longer armed: their re-send finds them stale)."""
        for order_id, deadline_id, _ in members:
            self.schedule.release(order_id, deadline_id, even_if_armed=True)

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

    # --- the tick --------------------------------------------------------------------------

    def tick_has_work(self) -> bool:
        """Whether `tick` would arm, re-send or relay anything now (one read): beat sends
        no tick while it would not (worker/adapters/beat_schedule.py)."""
        # An optional capability of the schedule (the Redis store has it: it holds the
        # outbox too); a schedule that cannot tell has every tick sent.
        probe = getattr(self.schedule, "tick_has_work", None)
        if probe is None:
            return True
        now = self.clock()
        return bool(probe(now + self.settings.deadline_horizon, now, now - OUTBOX_RELAY_AFTER))

    def tick(self) -> dict[str, int]:
        """Arm deadlines entering the horizon, re-send overdue ones, relay the outbox."""
        settings, schedule, now = self.settings, self.schedule, self.clock()
        grace = max(2.0, 2 * settings.sweep_interval.total_seconds())
        armed = schedule.arm_due(
            now + settings.deadline_horizon, ARM_BATCH, recheck_after=grace, now=now
        )
        tasks = self.send_armed(armed)
        # Messages waiting in the deadlines queue: while there are, a due deadline no worker
        # has received yet is presumed queued behind them, not lost (see sweep.lua).
        overdue = schedule.lost_armed(
            now,
            grace,
            SWEEP_BATCH,
            RESEND_BACKOFF_CAP,
            settings.visibility_timeout.total_seconds(),
            queued=self.queues.queued(channels.DEADLINES),
        )
        for order_id, deadline_id in overdue:
            self.send(order_id, deadline_id, None)
        stale = self.outbox.stale_outbox(now - OUTBOX_RELAY_AFTER, limit=RELAY_BATCH)
        left = self.service.outbox.publish(stale) if stale else 0
        if armed or overdue or stale:  # an idle tick is silent: one runs every second
            # A re-send (a worker died holding the deadline) or a relay (an event not out
            # with its commit) is worth a look: a warning, kept at `--loglevel WARNING`.
            (log.warning if overdue or stale else log.info)(
                "sweep",
                armed=len(armed),
                tasks=tasks,
                overdue=len(overdue),
                relayed=len(stale) - left,
            )
        return {"armed": len(armed), "overdue": len(overdue), "relayed": len(stale) - left}


def tally(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many firings ended in each status (a batch task's result)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
