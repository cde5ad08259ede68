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
from typing import Any, Literal, Protocol

from worker.rules.state import Deadline, OrderState


@dataclass(frozen=True)
class Loaded:
    state: OrderState | None
    version: int


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
        since_due = (now - deadline.due_at).total_seconds() * 1000
        start = max(deadline.due_at, deadline.known_at or deadline.due_at)
        return cls(round((now - start).total_seconds() * 1000, 1), round(since_due, 1))

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
    message_id: str = ""
    inflight_task_id: str = ""
    schedule: tuple[Deadline, ...] = ()  # added or moved deadlines
    unschedule: tuple[str, ...] = ()  # deadline ids no longer current
    outbox: tuple[tuple[str, dict[str, Any]], ...] = ()  # (entry id, entry)
    timeline: tuple[dict[str, Any], ...] = ()
    forget: tuple[str, ...] = ()  # message ids dead-lettered: no longer "seen"
    lateness: Lateness | None = None  # a deadline firing: how late it is (the metric)
    expire_in: timedelta | None = None  # closed order: its keys' TTL; None: they persist


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
    def commit(self, commit: Commit, now: datetime) -> CommitResult: ...
    def commit_many(self, commits: Sequence[Commit], now: datetime) -> list[CommitResult]: ...
    def confirm_published(self, entry_ids: list[str]) -> None: ...


class Publisher(Protocol):
    def publish(self, entry_id: str, entry: dict[str, Any]) -> None: ...


class BacklogReader(Protocol):
    """What a deadline firing must know about the queues (docs/design.md, backlog safety).

    Two implementations (worker/adapters/queues.py), chosen once by worker/runtime.py:
    the queues are lists on the store's own Redis, or they live in another broker.
    """

    def load_with_backlog(self, order_id: str) -> tuple[Loaded | None, Backlog | None]:
        """The order and its backlog in one round trip when the queues allow it, else
        (None, None): the service loads the order and the gate calls `backlog`."""
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
