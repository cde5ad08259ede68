"""The ports of the service: what it needs from storage, publishing and the queues.

`worker.service_layer.service` and the scheduler are written against these;
`worker.adapters` holds the Redis and kombu implementations, `worker.runtime` picks them,
and the service tests use the in-memory fakes of `tests/service/fakes.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

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
    lateness_ms: float | None = None  # a deadline firing: how late it is (the metric)
    expire_in: timedelta | None = None  # closed order: its keys' TTL; None: they persist
    tombstone_in: timedelta | None = None  # closed order: its tombstone's TTL (longer)


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
