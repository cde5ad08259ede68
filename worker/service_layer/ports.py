"""The ports of the service: what it needs from storage, publishing and the queues.

`worker.service_layer.service` and the scheduler are written against these;
`worker.adapters` holds the Redis and kombu implementations, `worker.runtime` picks them,
and the service tests use the in-memory fakes of `tests/service/fakes.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from worker.rules.state import Deadline, OrderState


@dataclass(frozen=True)
class Loaded:
    state: OrderState | None
    version: int
    expired: bool = False  # no state, and the order's tombstone says it closed and expired


Backlog = tuple[int, dict[str, tuple[datetime, datetime]]]
"""Messages waiting in the inbound queue, and the order's in-flight messages by task id:
(occurred_at, received_at)."""

CommitStatus = Literal["ok", "conflict", "duplicate", "rebind"]
"""What a commit answers: applied, lost the version race, or message already seen
("rebind": internal to the Redis store, the events' queue bindings changed; retried)."""


@dataclass(frozen=True)
class CommitResult:
    status: CommitStatus
    version: int
    published: tuple[str, ...] = ()  # outbox entry ids the commit itself published


BegunStatus = Literal["new", "duplicate", "reused"]
"""A message before its decision: to apply, already applied, or its id used before with
another body."""


@dataclass(frozen=True)
class Begun:
    status: BegunStatus
    loaded: Loaded | None = None  # the order, when "new"


@dataclass(frozen=True)
class Lateness:
    """How late a deadline fired, in milliseconds, two ways.

    `ms`: what the worker answers for, from the later of the due time and the moment the
    worker first knew the deadline (`Deadline.known_at`); `since_due_ms`: from the due
    time alone. They differ only for a deadline already past due when the worker learned
    of it (a message with a backdated `occurred_at`): that is the producer's delay, not
    the worker's, and alerting on it would page for nothing.
    """

    ms: float
    since_due_ms: float

    @classmethod
    def of(cls, deadline: Deadline, now: datetime) -> Lateness:
        since_due = round((now - deadline.due_at).total_seconds() * 1000, 1)
        known_at = deadline.known_at
        if known_at is None or known_at <= deadline.due_at:  # most: known before due
            return cls(since_due, since_due)
        return cls(round((now - known_at).total_seconds() * 1000, 1), since_due)

    def stored(self) -> str:
        """The form kept in Redis (commit.lua's lateness list): one number when both
        agree (the form before 1.3, which held the figure since the due time), else
        `ms|since_due_ms`."""
        if self.ms == self.since_due_ms:
            return repr(self.ms)
        return f"{self.ms!r}|{self.since_due_ms!r}"

    @classmethod
    def parse(cls, raw: bytes | str) -> Lateness:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ms, _, since_due = text.partition("|")
        return cls(float(ms), float(since_due or ms))


@dataclass(frozen=True)
class Commit:
    """Everything one decision writes, besides the state itself."""

    order_id: str
    expected_version: int
    state: OrderState
    message_id: str | None = None  # an inbound message's: seen from now on
    inflight_task_id: str | None = None  # an inbound message's task: its in-flight entry ends
    schedule: tuple[Deadline, ...] = ()  # added or moved deadlines
    unschedule: tuple[str, ...] = ()  # deadline ids no longer current
    outbox: tuple[tuple[str, dict[str, Any]], ...] = ()  # (entry id, entry)
    timeline: tuple[dict[str, Any], ...] = ()
    forget: tuple[str, ...] = ()  # message ids dead-lettered: no longer "seen"
    lateness: Lateness | None = None  # a deadline firing: how late it is (the metric)
    expire_in: timedelta | None = None  # closed order: its keys' TTL; None: they persist
    tombstone_in: timedelta | None = None  # closed order: its tombstone's TTL (longer)


class Observer(Protocol):
    """What the service tells the metrics (worker/observability/record.py): in-process
    counters only, never a round trip; an observer that fails must not fail the service."""

    def deadline_fired(self, kind: str, result: str, lateness: Lateness | None) -> None: ...
    def committed(self, event_types: Sequence[str], dead_letter_reasons: Sequence[str]) -> None: ...
    def span(self, name: str) -> AbstractContextManager[object]:
        """A tracing span around one step (decide, commit, publish); a no-op without
        OpenTelemetry."""
        ...


class NoObserver:
    def span(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()

    def deadline_fired(self, kind: str, result: str, lateness: Lateness | None) -> None:
        pass

    def committed(self, event_types: Sequence[str], dead_letter_reasons: Sequence[str]) -> None:
        pass


class Store(Protocol):
    def load(self, order_id: str) -> Loaded: ...
    def begin_message(
        self, order_id: str, message_id: str, digest: str, task_id: str, retain: timedelta
    ) -> Begun: ...
    def begin_many(
        self, begins: Sequence[tuple[str, str, str, str]], retain: timedelta
    ) -> list[Begun]: ...
    def commit(self, commit: Commit, now: datetime) -> CommitResult: ...
    def commit_many(self, commits: Sequence[Commit], now: datetime) -> list[CommitResult]: ...
    def confirm_published(self, entry_ids: list[str]) -> None: ...


class Publisher(Protocol):
    def publish(self, entry_id: str, entry: dict[str, Any]) -> None: ...


@runtime_checkable
class BatchPublisher(Publisher, Protocol):
    """A publisher that also sends many entries in one go (one producer, one pipeline:
    worker/adapters/publisher.py); a batch of firings uses it when there is one."""

    def publish_many(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> None: ...


class Schedule(Protocol):
    """The durable deadline schedule (docs/design.md: deadlines), after the commit wrote an
    order's deadlines into it (`Commit.schedule`, `Commit.unschedule`).

    The tick arms the deadlines entering the horizon (their tasks are sent) and re-sends
    armed ones whose task is lost; a worker incarnation that receives a deadline's task
    claims it, and beats while it lives. Implementations: the Redis store
    (worker/adapters/schedule_store.py) and an in-memory one
    (worker/adapters/memory_schedule.py).
    """

    def arm_due(
        self, until: datetime, limit: int, recheck_after: float, now: datetime | None = None
    ) -> list[tuple[str, str, datetime]]:
        """Arm up to `limit` deadlines due before `until`: (order, deadline id, due). The
        sweep looks at one again `recheck_after` s after its due time or `now`."""
        ...

    def lost_armed(
        self,
        now: datetime,
        grace: float,
        limit: int,
        backoff_cap: float,
        max_claim_age: float,
        queued: int = 0,
    ) -> list[tuple[str, str]]:
        """The sweep: armed deadlines overdue whose task no live claimant has, to send
        again (each re-send of one backs off: `grace` s, twice that ... `backoff_cap`). With
        `queued` messages in the deadlines queue an unclaimed one is presumed queued,
        for at most `max_claim_age` s."""
        ...

    def claim(self, order_id: str, deadline_id: str, claimant: str, now: datetime) -> None:
        """`claimant`, a worker incarnation, received the deadline's task at `now`."""
        ...

    def claim_many(
        self, deadlines: Sequence[tuple[str, str]], claimant: str, now: datetime
    ) -> None:
        """`claim` for every (order, deadline) of a batch task."""
        ...

    def release(self, order_id: str, deadline_id: str, even_if_armed: bool = False) -> None:
        """Forget a deadline's claim: no longer armed (a stale task ran), or, with
        `even_if_armed`, its task failed and the sweep should send it again."""
        ...

    def heartbeat(self, claimant: str, ttl_ms: int) -> None:
        """`claimant` is alive for the next `ttl_ms`."""
        ...


class PendingOutbox(Protocol):
    """The outbox entries no publish confirmed: what the tick's relay sends again."""

    def stale_outbox(self, older_than: datetime, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` entries committed before `older_than` and still unconfirmed."""
        ...

    def confirm_published(self, entry_ids: list[str]) -> None: ...


class BacklogReader(Protocol):
    """What a deadline firing must know about the queues (docs/design.md, backlog safety).

    Two implementations (worker/adapters/queues.py), chosen once by worker/runtime.py:
    the queues are lists on the store's own Redis, or they live in another broker.
    """

    def load_with_backlog(self, order_id: str) -> tuple[Loaded, Backlog | None]:
        """The order, and its backlog in the same round trip when the queues allow it
        (else None: the gate calls `backlog` if it needs it)."""
        ...

    def load_many_with_backlog(self, order_ids: Sequence[str]) -> list[tuple[Loaded, Backlog]]:
        """Many orders, each with its backlog, in as few round trips as the queues allow
        (a batch of firings)."""
        ...

    def backlog(self, order_id: str) -> Backlog:
        """Depth of the inbound queue and the order's in-flight messages."""
        ...

    def queued(self, queue: str) -> int:
        """Messages waiting in `queue` (0 if it does not exist)."""
        ...
