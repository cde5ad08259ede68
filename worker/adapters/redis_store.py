"""Redis adapter: order state, idempotency, deadlines schedule, outbox and in-flight index.

Every change to an order goes through one Lua script (commit.lua), so the state, the
message id, the deadlines and the outbox entries are written together or not at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

import redis

from worker.adapters import keys
from worker.adapters.direct_publish import BINDINGS, DirectEvents
from worker.ports import Backlog, Begun, BegunStatus, Commit, CommitResult, CommitStatus, Loaded
from worker.rules.state import OrderState

REBINDS = 5
"""Commits re-routed after the events' bindings changed under them, before the events are
left to the outbox instead: bindings change when consumers start, rarely twice at once."""

TIMELINE_CAP = 500
"""Lines of timeline kept per order: enough for any real order's life, bounded for abuse."""


def _script(name: str) -> str:
    return resources.files("worker.adapters").joinpath(name).read_text()


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _text(value: bytes | str) -> str:
    """A key, member or field as text: bytes from our clients (no decode_responses)."""
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    def __init__(self, client: redis.Redis, direct: DirectEvents | None = None) -> None:
        self.client = client
        # Set when the broker is this Redis: events are pushed to their queues by the commit.
        self.direct = direct
        self._commit = client.register_script(_script("commit.lua"))
        self._begin = client.register_script(_script("begin.lua"))
        self._arm = client.register_script(_script("arm.lua"))
        self._sweep = client.register_script(_script("sweep.lua"))

    # --- orders --------------------------------------------------------------------------

    def load(self, order_id: str) -> Loaded:
        raw, version = self.client.hmget(keys.order_state(order_id), ["state", "version"])
        return _loaded(raw, version)

    def load_for_firing(self, order_id: str, queue_keys: list[str]) -> tuple[Loaded, Backlog]:
        """A deadline's order and its backlog (see `backlog`), read in one round trip.

        The backlog is read with the state, not after it: the commit's version check still
        fences anything committed in between, exactly as with two separate reads."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.order_state(order_id), ["state", "version"])
        for key in queue_keys:
            pipe.llen(key)
        pipe.hgetall(keys.inflight(order_id))
        (raw, version), *depths, inflight = pipe.execute()
        backlog = sum(int(depth) for depth in depths), _inflight_entries(inflight)
        return _loaded(raw, version), backlog

    def is_seen(self, order_id: str, message_id: str) -> bool:
        return bool(self.client.sismember(keys.seen_messages(order_id), message_id))

    def begin_message(self, order_id: str, message_id: str, digest: str, task_id: str) -> Begun:
        """In one round trip (begin.lua): claim the message id for this body digest (none:
        no claim), answer a duplicate (and end its in-flight entry), else load the order."""
        status, raw, version = self._begin(
            keys=[
                keys.message_digests(order_id),
                keys.seen_messages(order_id),
                keys.order_state(order_id),
                keys.inflight(order_id),
            ],
            args=[message_id, digest, task_id],
        )
        begun = cast(BegunStatus, _text(status))
        return Begun(begun, _loaded(raw, version) if begun == "new" else None)

    def commit(self, commit: Commit, now: datetime) -> CommitResult:
        events = [entry["event"] for _, entry in commit.outbox if entry["kind"] == "event"]
        if self.direct is None or not events:
            return self._commit_once(commit, now, commit.outbox, [], [])
        published = tuple(entry_id for entry_id, entry in commit.outbox if entry["kind"] == "event")
        rest = tuple(item for item in commit.outbox if item[1]["kind"] != "event")
        for _ in range(REBINDS):
            pushes = self.direct.pushes(events)
            members = self.direct.members
            extra_keys = [BINDINGS, *(queue for queue, _ in pushes)]
            extra_args = [*(message for _, message in pushes), *members, len(members)]
            result = self._commit_once(commit, now, rest, extra_keys, extra_args)
            if result.status != "rebind":
                return replace(result, published=published if result.status == "ok" else ())
            self.direct.refresh()  # a queue was bound or unbound since: route again
        # Bindings that keep changing: the events go through the outbox, as with a broker.
        return self._commit_once(commit, now, commit.outbox, [], [])

    def _commit_once(
        self,
        commit: Commit,
        now: datetime,
        outbox: tuple[tuple[str, dict[str, Any]], ...],
        extra_keys: list[str],
        extra_args: list[Any],
    ) -> CommitResult:
        oid = commit.order_id
        args: list[Any] = [
            commit.expected_version,
            commit.state.model_dump_json(),
            commit.message_id,
            commit.inflight_task_id,
            epoch(now),
            TIMELINE_CAP,
            "" if commit.lateness_ms is None else commit.lateness_ms,
            len(commit.schedule),
        ]
        for deadline in commit.schedule:
            args += [keys.deadline_member(oid, deadline.id), epoch(deadline.due_at)]
        args.append(len(commit.unschedule))
        args += [keys.deadline_member(oid, deadline_id) for deadline_id in commit.unschedule]
        args.append(len(outbox))
        for entry_id, entry in outbox:
            args += [entry_id, json.dumps(entry, separators=(",", ":"))]
        args.append(len(commit.timeline))
        args += [json.dumps(line, separators=(",", ":"), default=str) for line in commit.timeline]
        args.append(len(commit.forget))
        args += list(commit.forget)
        status, version = self._commit(
            keys=[
                keys.order_state(oid),
                keys.seen_messages(oid),
                keys.SCHEDULE,
                keys.ARMED,
                keys.OUTBOX_PENDING,
                keys.OUTBOX_ENTRIES,
                keys.inflight(oid),
                keys.timeline(oid),
                keys.HOLDERS,
                keys.RESENDS,
                keys.FIRED_LATENESS,
                *extra_keys,
            ],
            args=args + extra_args,
        )
        return CommitResult(cast(CommitStatus, _text(status)), int(version))

    def timeline(self, order_id: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.client.lrange(keys.timeline(order_id), 0, -1)]

    # --- in-flight inbound messages (backlog safety) ---------------------------------------

    def mark_inflight(
        self, order_id: str, task_id: str, occurred_at: datetime, received_at: datetime
    ) -> None:
        value = f"{epoch(occurred_at)} {epoch(received_at)}"
        self.client.hset(keys.inflight(order_id), task_id, value)

    def clear_inflight(self, order_id: str, task_id: str) -> None:
        self.client.hdel(keys.inflight(order_id), task_id)

    def inflight(self, order_id: str) -> dict[str, tuple[datetime, datetime]]:
        return _inflight_entries(self.client.hgetall(keys.inflight(order_id)))

    def queue_depth(self, queue_keys: list[str]) -> int:
        """Messages waiting in a queue's lists (kombu's Redis transport, on this Redis)."""
        pipe = self.client.pipeline(transaction=False)
        for key in queue_keys:
            pipe.llen(key)
        return sum(int(depth) for depth in pipe.execute())

    def backlog(self, order_id: str, queue_keys: list[str]) -> Backlog:
        """In one round trip: messages waiting in the queue's lists, and the order's in-flight."""
        pipe = self.client.pipeline(transaction=False)
        for key in queue_keys:
            pipe.llen(key)
        pipe.hgetall(keys.inflight(order_id))
        *depths, inflight = pipe.execute()
        return sum(int(depth) for depth in depths), _inflight_entries(inflight)

    # --- deadline schedule -----------------------------------------------------------------

    def arm_due(
        self, until: datetime, limit: int, recheck_after: float
    ) -> list[tuple[str, str, datetime]]:
        """Move deadlines due before `until` to the armed set; returns (order, id, due)."""
        flat = self._arm(
            keys=[keys.SCHEDULE, keys.ARMED], args=[epoch(until), limit, recheck_after]
        )
        return [
            (*keys.parse_deadline_member(flat[i]), from_epoch(float(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    def lost_armed(
        self,
        now: datetime,
        grace: float,
        limit: int,
        backoff_cap: float,
        max_holding: float,
        queued: int = 0,
    ) -> list[tuple[str, str]]:
        """Armed deadlines overdue whose task no live worker incarnation holds and, with
        `queued` messages waiting in the deadlines queue, that have waited there longer
        than `max_holding` (see sweep.lua)."""
        lost = self._sweep(
            keys=[keys.ARMED, keys.HOLDERS, keys.RESENDS],
            args=[epoch(now), grace, limit, backoff_cap, keys.ALIVE_PREFIX, max_holding, queued],
        )
        return [keys.parse_deadline_member(member) for member in lost]

    def hold(self, order_id: str, deadline_id: str, holder: str, now: datetime) -> None:
        """`holder`, a worker incarnation (node name and boot id), received the deadline's
        task: the sweep leaves it to that process while its alive key lasts."""
        member = keys.deadline_member(order_id, deadline_id)
        self.client.hset(keys.HOLDERS, member, f"{holder} {epoch(now)}")

    def release(self, order_id: str, deadline_id: str, even_if_armed: bool = False) -> None:
        """Forget the holder of a deadline: no longer armed (a stale task ran), or its task
        failed and the sweep should send it again."""
        member = keys.deadline_member(order_id, deadline_id)
        if even_if_armed or self.client.zscore(keys.ARMED, member) is None:
            self.client.hdel(keys.HOLDERS, member)

    def heartbeat(self, holder: str, ttl_ms: int) -> None:
        """`holder` (a worker incarnation) is alive for the next `ttl_ms`."""
        self.client.set(keys.alive(holder), "1", px=ttl_ms)

    def next_deadlines(self, count: int) -> list[tuple[str, str, datetime | None, str]]:
        """The next `count` pending deadlines overall: (order, id, due or None, where)."""
        rows: list[tuple[str, str, datetime | None, str]] = []
        for member, score in self._first_scored(keys.SCHEDULE, count):
            rows.append((*keys.parse_deadline_member(member), from_epoch(score), "scheduled"))
        for member, _ in self._first_scored(keys.ARMED, count):
            rows.append((*keys.parse_deadline_member(member), None, "armed"))
        return rows

    def _first_scored(self, key: str, count: int) -> list[tuple[bytes | str, float]]:
        # withscores=True answers (member, score) pairs, the score cast by float
        scored = self.client.zrange(key, 0, count - 1, withscores=True)
        return cast(list[tuple[bytes | str, float]], scored)

    def schedule_size(self) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(keys.SCHEDULE)
        pipe.zcard(keys.ARMED)
        scheduled, armed = pipe.execute()
        return int(scheduled), int(armed)

    # --- outbox --------------------------------------------------------------------------

    def confirm_published(self, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(keys.OUTBOX_PENDING, *entry_ids)
        pipe.hdel(keys.OUTBOX_ENTRIES, *entry_ids)
        pipe.execute()

    def stale_outbox(self, older_than: datetime, limit: int) -> list[tuple[str, dict[str, Any]]]:
        # without withscores, members only
        ids = cast(
            list[bytes | str],
            self.client.zrangebyscore(keys.OUTBOX_PENDING, "-inf", epoch(older_than), 0, limit),
        )
        if not ids:
            return []
        raw = self.client.hmget(keys.OUTBOX_ENTRIES, ids)
        entries = []
        for entry_id, body in zip(ids, raw, strict=True):
            if body is None:  # confirmed between the two reads
                continue
            entries.append((_text(entry_id), json.loads(body)))
        return entries


def _loaded(raw: bytes | str | None, version: bytes | str | None) -> Loaded:
    if raw is None:
        return Loaded(None, 0)
    return Loaded(OrderState.model_validate_json(raw), int(version or 0))


def _inflight_entries(raw: dict[Any, Any]) -> dict[str, tuple[datetime, datetime]]:
    entries: dict[str, tuple[datetime, datetime]] = {}
    for task_id, value in raw.items():
        occurred, received = (float(part) for part in _text(value).split())
        entries[_text(task_id)] = (from_epoch(occurred), from_epoch(received))
    return entries
