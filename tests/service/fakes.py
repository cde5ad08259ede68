"""In-memory fakes of the service's ports : service tests only.

The deadline schedule is the package's own in-memory one (worker/adapters/memory_schedule.py):
the fake store's commit writes it as commit.lua writes the Redis schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import formats
from worker.adapters.memory_schedule import InMemorySchedule
from worker.rules.state import OrderState
from worker.service_layer.ports import Backlog, Begun, Commit, CommitResult, Loaded


@dataclass
class FakeStore:
    states: dict[str, tuple[OrderState, int]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    schedule: InMemorySchedule = field(default_factory=InMemorySchedule)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    since_due: list[float] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    interfere: list[OrderState] = field(default_factory=list)  # commits "another process" makes
    tombstones: set[str] = field(default_factory=set)  # closed orders (expired, once gone)
    begin_rounds: list[int] = field(default_factory=list)  # begin_many's sizes, in turn

    def load(self, order_id: str) -> Loaded:
        if order_id not in self.states:
            return Loaded(None, 0, order_id in self.tombstones)
        state, version = self.states[order_id]
        return Loaded(state, version)

    def expire(self, order_id: str) -> None:
        """The order's keys expire (its tombstone stays, if it closed)."""
        self.states.pop(order_id, None)
        self.seen = {(oid, m) for oid, m in self.seen if oid != order_id}

    def is_seen(self, order_id: str, message_id: str) -> bool:
        return (order_id, message_id) in self.seen

    def begin_message(
        self, order_id: str, message_id: str, digest: str, task_id: str, retain: Any = None
    ) -> Begun:
        if digest and self.digests.setdefault((order_id, message_id), digest) != digest:
            return Begun("reused")
        if self.is_seen(order_id, message_id):
            return Begun("duplicate")
        return Begun("new", self.load(order_id))

    def begin_many(
        self, begins: Sequence[tuple[str, str, str, str]], retain: Any = None
    ) -> list[Begun]:
        self.begin_rounds.append(len(begins))
        return [self.begin_message(*begin) for begin in begins]

    def commit(self, commit: Commit, now: datetime) -> CommitResult:
        oid = commit.order_id
        if self.interfere:  # another worker wins the race just before us
            _, version = self.states.get(oid, (None, 0))
            self.states[oid] = (self.interfere.pop(0), version + 1)
        if commit.message_id and (oid, commit.message_id) in self.seen:
            return CommitResult("duplicate", 0)
        _, current = self.states.get(oid, (None, 0))
        if current != commit.expected_version:
            return CommitResult("conflict", current)
        self.states[oid] = (commit.state, current + 1)
        if commit.tombstone_in is None:
            self.tombstones.discard(oid)
        else:
            self.tombstones.add(oid)
        if commit.message_id:
            self.seen.add((oid, commit.message_id))
        for deadline in commit.schedule:
            self.schedule.put(oid, deadline.id, deadline.due_at)
        for deadline_id in commit.unschedule:
            self.schedule.drop(oid, deadline_id)
        self.outbox.update(dict(commit.outbox))
        self.seen -= {(oid, message_id) for message_id in commit.forget}
        self.commits.append(commit)
        if commit.lateness is not None:
            self.record_lateness(commit.lateness.ms)
            self.since_due.append(commit.lateness.since_due_ms)
        return CommitResult("ok", current + 1)

    def commit_many(self, commits: list[Commit], now: datetime) -> list[CommitResult]:
        return [self.commit(commit, now) for commit in commits]

    def confirm_published(self, entry_ids: list[str]) -> None:
        for entry_id in entry_ids:
            self.outbox.pop(entry_id, None)

    def stale_outbox(self, older_than: datetime, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Every entry not confirmed (the fake keeps no commit times), `limit` at most."""
        return list(self.outbox.items())[:limit]

    def record_lateness(self, millis: float) -> None:  # what commit.lua keeps in Redis
        self.lateness.append(millis)


@dataclass
class FakeQueues:
    """ports.BacklogReader over the fake store: the inbound queue's depth and each order's
    in-flight messages are set by the test."""

    store: FakeStore
    depth: int = 0
    inflight: dict[str, dict[str, tuple[datetime, datetime]]] = field(default_factory=dict)
    deadlines_queued: int = 0

    def load_with_backlog(self, order_id: str) -> tuple[Loaded, Backlog | None]:
        return self.store.load(order_id), self.backlog(order_id)

    def load_many_with_backlog(self, order_ids: Sequence[str]) -> list[tuple[Loaded, Backlog]]:
        return [(self.store.load(order_id), self.backlog(order_id)) for order_id in order_ids]

    def backlog(self, order_id: str) -> Backlog:
        return self.depth, dict(self.inflight.get(order_id, {}))

    def queued(self, queue: str) -> int:
        return self.deadlines_queued


@dataclass
class FakePublisher:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0

    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unavailable")
        formats.version_of(formats.OUTBOX_ENTRY, entry)  # as KombuPublisher: newer is left
        self.published.append((entry_id, entry))

    def event_types(self) -> list[str]:
        return [e["event"]["type"] for _, e in self.published if e["kind"] == "event"]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now
