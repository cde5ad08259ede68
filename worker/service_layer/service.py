"""The service layer: dedupe -> load -> decide -> commit -> publish.

Nothing else decides. The rules are pure; this module owns the clock and the retries on a
lost optimistic-concurrency race. commit.py turns a decision into its one atomic commit,
outbox.py publishes what the commit left in the outbox.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from schemas.policy import PolicySet
from schemas.types import format_timestamp
from worker import rules
from worker.logging import get_logger
from worker.rules.parking import DEFAULT_HOLD
from worker.rules.retention import DEFAULT_RETENTION, DEFAULT_TOMBSTONE_RETENTION, is_expired
from worker.rules.state import Deadline, DeadlineFired, Decision, LabelGenerated
from worker.service_layer.backlog import WaitReason
from worker.service_layer.commit import commit_for, no_change
from worker.service_layer.outbox import Outbox
from worker.service_layer.ports import (
    Commit,
    Lateness,
    Loaded,
    NoObserver,
    Observer,
    Publisher,
    Store,
)

log = get_logger("aftersales.service")

MAX_ATTEMPTS = 20
"""Optimistic-commit attempts before the task is retried by Celery: two racing messages of
one order settle in two, so twenty means something is badly wrong (a hot order)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class ConcurrencyExhausted(RuntimeError):
    """Transient: the order kept changing under us; the task retries later."""


MessageStatus = Literal["applied", "parked", "duplicate", "reused", "expired"]
"""What became of an inbound message: applied, parked (waiting for an earlier fact),
already applied, its id used before with another body, or its order's keys expired."""

FiringStatus = Literal["applied", "parked", "stale", "not_due", "waiting"]
"""What became of a deadline's firing (or a label's record): applied, deferred by the
rules, no longer current (fenced off, or nothing to change), early, or waiting (backlog)."""


@dataclass(frozen=True)
class Outcome:
    status: MessageStatus | FiringStatus
    events: tuple[str, ...] = ()
    version: int = 0
    unpublished: int = 0  # entries left for the relay
    retry_at: datetime | None = None  # "not_due": the deadline's time, to fire it then
    wait: WaitReason | None = None  # "waiting": what the firing waits behind (backlog.py)

    def summary(self) -> str:
        """The status, with the time or the reason after a colon (a deadline task's result)."""
        if self.retry_at is not None:
            return f"{self.status}:{format_timestamp(self.retry_at)}"
        if self.wait is not None:
            return f"{self.status}:{self.wait}"
        return self.status


@dataclass(frozen=True)
class Inbound:
    """What a commit records of an inbound message: its id is seen from then on, and its
    in-flight entry ends (deadlines and labels have neither)."""

    message_id: str
    task_id: str


@dataclass(frozen=True)
class Arrival:
    """One inbound message of a batch (Service.handle_many), as `handle_message` takes it."""

    message: Any
    task_id: str = ""
    digest: str = ""
    trace: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Firing:
    """One deadline of a batch (Service.fire_many): current and due, and may fire now
    (the scheduler fenced and gated it), on its order as loaded."""

    order_id: str
    deadline: Deadline
    loaded: Loaded


@dataclass
class Service:
    store: Store
    publisher: Publisher
    policy: PolicySet
    hold_for: timedelta = DEFAULT_HOLD
    retention: timedelta = DEFAULT_RETENTION
    tombstone: timedelta = DEFAULT_TOMBSTONE_RETENTION
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    observer: Observer = field(default_factory=NoObserver, repr=False)

    # --- entry points --------------------------------------------------------------------

    def handle_message(
        self,
        message: Any,
        task_id: str = "",
        digest: str = "",
        trace: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Apply one validated inbound message (at most once per message_id).

        `digest`: of the message's body; the first body seen under a message id claims it,
        and another body under that id is "reused" (nothing applied). `trace`: the W3C
        trace context the producer sent (schemas/trace.py), carried by every event."""
        begun = self.store.begin_message(
            message.order_id, message.message_id, digest, task_id, self.retention
        )
        if begun.status != "new":
            return Outcome(begun.status)
        inbound = Inbound(message.message_id, task_id)
        return self._apply(message.order_id, message, inbound, begun.loaded, trace=trace)

    def handle_many(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """`handle_message` for a batch: the begins of its messages in one round trip,
        their commits in another, each still its own version-checked commit decided on
        its order as loaded. Messages of one order go in turns, in the batch's order (a
        later one sees the earlier one's commit); one that loses a race with another
        process goes the single way (reload, decide again)."""
        outcomes: list[Outcome | None] = [None] * len(arrivals)
        for turn in _turns([arrival.message.order_id for arrival in arrivals]):
            begun = self.store.begin_many(
                [
                    (a.message.order_id, a.message.message_id, a.digest, a.task_id)
                    for a in (arrivals[i] for i in turn)
                ],
                self.retention,
            )
            now = self.clock()
            planned: list[tuple[int, Commit, Decision]] = []
            for index, begin in zip(turn, begun, strict=True):
                arrival, loaded = arrivals[index], begin.loaded
                if begin.status != "new" or loaded is None:
                    outcomes[index] = Outcome("reused" if begin.status == "reused" else "duplicate")
                    continue
                if is_expired(loaded.state, loaded.expired):  # as in _apply
                    outcomes[index] = Outcome("expired")
                    continue
                message = arrival.message
                state = loaded.state or rules.new_state(message.order_id)
                decision = rules.decide(state, message, now, self.policy, self.hold_for)
                commit = commit_for(
                    loaded.version,
                    state,
                    decision,
                    message,
                    now,
                    self.retention,
                    self.tombstone,
                    arrival.trace,
                    message_id=message.message_id,
                    inflight_task_id=arrival.task_id,
                )
                planned.append((index, commit, decision))
            settled, raced = self._commit_all(planned, now)
            for index, (outcome, _) in settled.items():
                outcomes[index] = outcome
            for index in raced:
                arrival = arrivals[index]
                outcomes[index] = self.handle_message(
                    arrival.message, arrival.task_id, arrival.digest, arrival.trace
                )
        done = [outcome for outcome in outcomes if outcome is not None]
        if len(done) != len(arrivals):  # every message is answered in its turn
            raise RuntimeError(f"{len(arrivals) - len(done)} messages of a batch unanswered")
        return done

    def fire(self, order_id: str, deadline: Deadline, loaded: Loaded | None = None) -> Outcome:
        """Fire a deadline the scheduler found current, due and free to fire (fencing and
        backlog safety: worker/service_layer/scheduler.py). `loaded`: the order as the
        scheduler read it; the commit's version check fences it like a fresh load, and a
        lost race decides again on the fresh order, where the rules fence a deadline that
        is gone or moved ("stale")."""
        now = self.clock()
        fired = DeadlineFired(order_id=order_id, deadline=deadline)
        late = Lateness.of(deadline, now)
        outcome = self._apply(order_id, fired, None, loaded=loaded, lateness=late)
        if outcome.status == "applied":
            _log_fired(order_id, deadline, late, outcome)
        self.observer.deadline_fired(deadline.kind, outcome.status, late)
        return outcome

    def fire_many(self, firings: Sequence[Firing]) -> list[Outcome]:
        """`fire` for many deadlines, their commits in one round trip: each is still its
        own version-checked commit, decided on the order as loaded. One that loses a race
        with another change of its order goes the single way (reload, retry)."""
        now = self.clock()
        outcomes: list[Outcome] = []
        planned: list[tuple[int, Commit, Decision]] = []
        for firing in firings:
            loaded, deadline = firing.loaded, firing.deadline
            outcomes.append(Outcome("stale"))
            if loaded.state is None:
                self.observer.deadline_fired(deadline.kind, "stale", None)
                continue
            fired = DeadlineFired(order_id=firing.order_id, deadline=deadline)
            decision = rules.decide(loaded.state, fired, now, self.policy, self.hold_for)
            if no_change(loaded.state, decision):
                self.observer.deadline_fired(deadline.kind, "stale", None)
                continue
            commit = commit_for(
                loaded.version,
                loaded.state,
                decision,
                fired,
                now,
                self.retention,
                self.tombstone,
                lateness=Lateness.of(deadline, now),
            )
            planned.append((len(outcomes) - 1, commit, decision))
        settled, raced = self._commit_all(planned, now)
        for index, (outcome, commit) in settled.items():
            deadline = firings[index].deadline
            outcomes[index] = outcome
            if outcome.status == "applied":
                _log_fired(firings[index].order_id, deadline, commit.lateness, outcome)
            self.observer.deadline_fired(deadline.kind, outcome.status, commit.lateness)
        for index in raced:  # lost a race: decided again on the fresh order, the single way
            outcomes[index] = self.fire(firings[index].order_id, firings[index].deadline)
        return outcomes

    def _commit_all(
        self, planned: Sequence[tuple[int, Commit, Decision]], now: datetime
    ) -> tuple[dict[int, tuple[Outcome, Commit]], list[int]]:
        """Planned commits (index, commit, decision) in one round trip: the outcome of
        each that committed (or found its message applied already), by index, and the
        indexes of those that lost a race, for the caller to decide again the single way.
        What the commits did not push themselves is published together, before any
        retry (a retry may raise: an outage)."""
        results = self.store.commit_many([commit for _, commit, _ in planned], now)
        settled: dict[int, tuple[Outcome, Commit]] = {}
        raced: list[int] = []
        entries: list[tuple[str, dict[str, Any]]] = []
        for (index, commit, decision), result in zip(planned, results, strict=True):
            if result.status == "duplicate":
                settled[index] = Outcome("duplicate"), commit
                continue
            if result.status != "ok":
                raced.append(index)
                continue
            self._committed(commit, decision)
            published = set(result.published)  # pushed by the commit itself
            entries += [entry for entry in commit.outbox if entry[0] not in published]
            events = tuple(e["event"]["type"] for _, e in commit.outbox if e["kind"] == "event")
            settled[index] = (
                Outcome("applied" if decision.applied else "parked", events, result.version),
                commit,
            )
        self.outbox.publish_batch(entries)
        return settled, raced

    @property
    def outbox(self) -> Outbox:
        """Publishing and confirming outbox entries (outbox.py), with this service's parts."""
        return Outbox(self.store, self.publisher)

    def record_label(self, generated: LabelGenerated) -> Outcome:
        return self._apply(generated.order_id, generated, None)

    def _committed(self, commit: Commit, decision: Decision) -> None:
        self.observer.committed(
            [entry["event"]["type"] for _, entry in commit.outbox if entry["kind"] == "event"],
            [letter.kind for letter in decision.dead_letters],
        )

    # --- the pipeline ----------------------------------------------------------------------

    def _apply(
        self,
        order_id: str,
        item: Any,
        inbound: Inbound | None,
        loaded: Loaded | None = None,
        lateness: Lateness | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Outcome:
        for attempt in range(MAX_ATTEMPTS):
            loaded = loaded or self.store.load(order_id)
            now = self.clock()
            if inbound and is_expired(loaded.state, loaded.expired):
                # Its order closed and its keys expired (docs/rules.md, retention): the task
                # dead-letters it, and nothing is written, so it never starts the order afresh.
                return Outcome("expired")
            state = loaded.state or rules.new_state(order_id)
            with self.observer.span("decide"):
                decision = rules.decide(state, item, now, self.policy, self.hold_for)
            if inbound is None and no_change(state, decision):
                return Outcome("stale")
            commit = commit_for(
                loaded.version,
                state,
                decision,
                item,
                now,
                self.retention,
                self.tombstone,
                trace,
                message_id=inbound.message_id if inbound else None,
                inflight_task_id=inbound.task_id if inbound else None,
                lateness=lateness,
            )
            with self.observer.span("commit"):
                result = self.store.commit(commit, now)
            if result.status == "duplicate":
                return Outcome("duplicate")
            if result.status == "ok":
                self._committed(commit, decision)
                published = set(result.published)  # by the commit itself
                with self.observer.span("publish"):
                    left = self.outbox.publish(
                        [entry for entry in commit.outbox if entry[0] not in published]
                    )
                events = tuple(
                    entry["event"]["type"] for _, entry in commit.outbox if entry["kind"] == "event"
                )
                return Outcome(
                    "applied" if decision.applied else "parked", events, result.version, left
                )
            loaded = None
            log.info("lost a commit race; retrying", order_id=order_id, attempt=attempt + 1)
            # Lost the race to another process: back off a little, with jitter, and retry.
            self.sleep(min(0.2, 0.005 * 2**attempt) * random.random())
        raise ConcurrencyExhausted(f"order {order_id} changed {MAX_ATTEMPTS} times under us")


def _turns(order_ids: Sequence[str]) -> list[list[int]]:
    """Indexes of a batch in turns, each order at most once a turn, in the batch's order:
    the first message of every order, then the second, and so on."""
    turns: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, order_id in enumerate(order_ids):
        turn = seen.get(order_id, 0)
        seen[order_id] = turn + 1
        if turn == len(turns):
            turns.append([])
        turns[turn].append(index)
    return turns


def _log_fired(order_id: str, deadline: Deadline, late: Lateness | None, outcome: Outcome) -> None:
    log.info(
        "deadline fired",
        order_id=order_id,
        deadline_id=deadline.id,
        kind=deadline.kind,
        lateness_ms=None if late is None else late.ms,
        since_due_ms=None if late is None else late.since_due_ms,
        events=list(outcome.events),
    )


__all__ = [
    "Arrival",
    "ConcurrencyExhausted",
    "Deadline",
    "Firing",
    "FiringStatus",
    "Inbound",
    "MessageStatus",
    "Outcome",
    "Service",
]
