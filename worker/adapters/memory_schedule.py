"""The deadline schedule in memory (ports.Schedule): for tests and tools, not for workers.

The same rules as the Redis schedule (schedule_store.py with arm.lua and sweep.lua), on
dicts: what a commit writes (`put`, `drop`, as commit.lua does), arming, claims,
heartbeats and the sweep with its back-off. One process only: nothing here survives it.
Like dramatiq's stub broker and procrastinate's in-memory connector, it ships in the
package so that tests of the scheduler need no Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from worker.adapters.shards import QUEUE_CLAIMANT

Member = tuple[str, str]
"""(order id, deadline id)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class InMemorySchedule:
    clock: Callable[[], datetime] = _utcnow  # for heartbeats' expiry only
    scheduled: dict[Member, datetime] = field(default_factory=dict)  # member -> due
    armed: dict[Member, datetime] = field(default_factory=dict)  # member -> re-check at
    claims: dict[Member, tuple[str, datetime]] = field(default_factory=dict)
    resends: dict[Member, int] = field(default_factory=dict)
    alive_until: dict[str, datetime] = field(default_factory=dict)  # claimant -> expiry

    # --- what a commit writes ---------------------------------------------------------------

    def put(self, order_id: str, deadline_id: str, due: datetime) -> None:
        """A deadline added or moved: scheduled afresh, no longer armed or claimed."""
        member = (order_id, deadline_id)
        self.drop(order_id, deadline_id)
        self.scheduled[member] = due

    def drop(self, order_id: str, deadline_id: str) -> None:
        """A deadline no longer current (fired, or its reason went away)."""
        member = (order_id, deadline_id)
        for index in (self.scheduled, self.armed, self.claims, self.resends):
            index.pop(member, None)

    def __contains__(self, member: object) -> bool:
        """(order id, deadline id) is pending: scheduled or armed."""
        return member in self.scheduled or member in self.armed

    def __iter__(self) -> Iterator[Member]:
        return iter([*self.scheduled, *self.armed])

    # --- ports.Schedule -------------------------------------------------------------------

    def arm_due(
        self, until: datetime, limit: int, recheck_after: float, now: datetime | None = None
    ) -> list[tuple[str, str, datetime]]:
        due = sorted(
            ((at, member) for member, at in self.scheduled.items() if at <= until),
            key=lambda row: (row[0], row[1]),
        )[:limit]
        armed = []
        for at, member in due:
            del self.scheduled[member]
            floor = max(at, now) if now is not None else at
            self.armed[member] = floor + timedelta(seconds=recheck_after)
            armed.append((*member, at))
        return armed

    def lost_armed(
        self,
        now: datetime,
        grace: float,
        limit: int,
        backoff_cap: float,
        max_claim_age: float,
        queued: int = 0,
    ) -> list[tuple[str, str]]:
        overdue = sorted(
            (member for member, at in self.armed.items() if at <= now),
            key=lambda member: (self.armed[member], member),
        )[:limit]
        lost = []
        for member in overdue:
            claim = self.claims.get(member)
            if claim is not None:
                claimant, since = claim
                kept = (now - since).total_seconds() < max_claim_age
                if kept and claimant == QUEUE_CLAIMANT:
                    kept = queued > 0
                elif kept:
                    kept = self._alive(claimant)
            else:
                kept = queued > 0
                if kept:  # presumed queued behind the others: the queue claims it
                    self.claims[member] = (QUEUE_CLAIMANT, now)
            if kept:
                self.armed[member] = now + timedelta(seconds=grace)
                continue
            sent = self.resends[member] = self.resends.get(member, 0) + 1
            wait = min(backoff_cap, grace * 2 ** (sent - 1))
            self.armed[member] = now + timedelta(seconds=wait)
            self.claims.pop(member, None)
            lost.append(member)
        return lost

    def claim(self, order_id: str, deadline_id: str, claimant: str, now: datetime) -> None:
        self.claims[(order_id, deadline_id)] = (claimant, now)

    def claim_many(
        self, deadlines: Sequence[tuple[str, str]], claimant: str, now: datetime
    ) -> None:
        for order_id, deadline_id in deadlines:
            self.claim(order_id, deadline_id, claimant, now)

    def release(self, order_id: str, deadline_id: str, even_if_armed: bool = False) -> None:
        member = (order_id, deadline_id)
        if even_if_armed or member not in self.armed:
            self.claims.pop(member, None)

    def heartbeat(self, claimant: str, ttl_ms: int) -> None:
        self.alive_until[claimant] = self.clock() + timedelta(milliseconds=ttl_ms)

    def _alive(self, claimant: str) -> bool:
        until = self.alive_until.get(claimant)
        return until is not None and self.clock() < until
