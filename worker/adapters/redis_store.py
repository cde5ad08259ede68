"""Redis adapter: order state, idempotency, deadlines schedule, outbox and in-flight index.

Every change to an order goes through one Lua script (commit.lua), so the state, the
message id, the deadlines and the outbox entries are written together or not at all.
On one Redis or on a Redis Cluster (docs/cluster.md): the keyspace (keys.py) puts an
order's keys in its shard's slot, and the methods over global indexes walk the shards.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, cast

from redis.cluster import RedisCluster

from worker.adapters import keys
from worker.adapters.direct_publish import BINDINGS, DirectEvents
from worker.adapters.shards import OutboxShards, StateClient, gone_holders
from worker.adapters.state_codec import StateCodec
from worker.rules.retention import DEFAULT_RETENTION
from worker.service_layer.ports import (
    Backlog,
    Begun,
    BegunStatus,
    Commit,
    CommitResult,
    CommitStatus,
    Loaded,
)

REBINDS = 5
"""Commits re-routed after the events' bindings changed under them, before the events are
left to the outbox instead: bindings change when consumers start, rarely twice at once."""

TIMELINE_CAP = 500
"""Lines of timeline kept per order: enough for any real order's life, bounded for abuse."""


DIGEST_CHARS = 32
"""Hex characters of a body's SHA-256 kept per message id: 128 bits, out of reach of a
forged second body, half the bytes of the whole digest (digests stored whole still match)."""

TIMELINE_DEFAULTS: dict[str, Any] = {"result": "applied", "events": [], "dead_letters": 0}
"""Timeline values left out of a stored line: most inputs are applied, publish nothing and
dead-letter nothing (worker/service_layer/service.py writes every key)."""


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
    timeline_defaults = TIMELINE_DEFAULTS
    digest_chars = DIGEST_CHARS

    def __init__(
        self,
        client: StateClient,
        direct: DirectEvents | None = None,
        keyspace: keys.Keyspace | None = None,
    ) -> None:
        self.client = client
        # Set when the broker is this Redis: events are pushed to their queues by the commit.
        self.direct = direct
        clustered = isinstance(client, RedisCluster)
        self.keys = keyspace or (keys.CLUSTER if clustered else keys.SINGLE)
        self._outbox = OutboxShards(self.keys)
        self._first_shard = 0  # each walk starts one shard further: no shard always last
        self._commit = client.register_script(_script("commit.lua"))
        self._begin = client.register_script(_script("begin.lua"))
        self._arm = client.register_script(_script("arm.lua"))
        self._sweep = client.register_script(_script("sweep.lua"))
        self.codec = StateCodec(client)

    # --- orders --------------------------------------------------------------------------

    def load(self, order_id: str) -> Loaded:
        raw, version = self.client.hmget(self.keys.order_state(order_id), ["state", "version"])
        return self._loaded(raw, version)

    def load_for_firing(self, order_id: str, queue_keys: list[str]) -> tuple[Loaded, Backlog]:
        """A deadline's order and its backlog (see `backlog`), read in one round trip.

        The backlog is read with the state, not after it: the commit's version check still
        fences anything committed in between, exactly as with two separate reads."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.order_state(order_id), ["state", "version"])
        for key in queue_keys:
            pipe.llen(key)
        pipe.hgetall(self.keys.inflight(order_id))
        (raw, version), *depths, inflight = pipe.execute()
        backlog = sum(int(depth) for depth in depths), _inflight_entries(inflight)
        return self._loaded(raw, version), backlog

    def load_many_for_firing(
        self, order_ids: Sequence[str], queue_keys: list[str]
    ) -> list[tuple[Loaded, Backlog]]:
        """`load_for_firing` for many orders in one round trip: the queue's depth is read
        once, in the same pipeline. With no `queue_keys` the depth is 0 (another broker)."""
        pipe = self.client.pipeline(transaction=False)
        for key in queue_keys:
            pipe.llen(key)
        for order_id in order_ids:
            pipe.hmget(self.keys.order_state(order_id), ["state", "version"])
            pipe.hgetall(self.keys.inflight(order_id))
        replies = pipe.execute()
        depth = sum(int(depth) for depth in replies[: len(queue_keys)])
        rows = replies[len(queue_keys) :]
        return [
            (self._loaded(*rows[i]), (depth, _inflight_entries(rows[i + 1])))
            for i in range(0, len(rows), 2)
        ]

    def is_seen(self, order_id: str, message_id: str) -> bool:
        return bool(self.client.sismember(self.keys.seen_messages(order_id), message_id))

    def begin_message(
        self,
        order_id: str,
        message_id: str,
        digest: str,
        task_id: str,
        retain: timedelta = DEFAULT_RETENTION,
    ) -> Begun:
        """In one round trip (begin.lua): claim the message id for this body digest (none:
        no claim), answer a duplicate (and end its in-flight entry), else load the order.

        The digests expire with the order's state, or after `retain` when the order has no
        state (a message refused before any commit)."""
        status, raw, version = self._begin(
            keys=[
                self.keys.message_digests(order_id),
                self.keys.seen_messages(order_id),
                self.keys.order_state(order_id),
                self.keys.inflight(order_id),
            ],
            args=[message_id, digest[: self.digest_chars], task_id, _ms(retain)],
        )
        begun = cast(BegunStatus, _text(status))
        return Begun(begun, self._loaded(raw, version) if begun == "new" else None)

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
            self.codec.encode(commit.state),
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
        args += [_timeline_line(line, self.timeline_defaults) for line in commit.timeline]
        args.append(len(commit.forget))
        args += list(commit.forget)
        args.append("" if commit.expire_in is None else _ms(commit.expire_in))
        space, shard = self.keys, self.keys.shard_of(oid)
        self._outbox.remember([entry_id for entry_id, _ in commit.outbox], shard)
        status, version = self._commit(
            keys=[
                space.order_state(oid),
                space.seen_messages(oid),
                space.schedule(shard),
                space.armed(shard),
                space.outbox_pending(shard),
                space.outbox_entries(shard),
                space.inflight(oid),
                space.timeline(oid),
                space.holders(shard),
                space.resends(shard),
                space.lateness(shard),
                space.message_digests(oid),
                *extra_keys,
            ],
            args=args + extra_args,
        )
        return CommitResult(cast(CommitStatus, _text(status)), int(version))

    def commit_many(self, commits: Sequence[Commit], now: datetime) -> list[CommitResult]:
        """Many `commit`s in one round trip, each still its own atomic, version-checked
        script: `commit` builds each call as usual, queued on a pipeline instead of sent."""
        if not commits:
            return []
        if self.keys.clustered:  # a cluster pipeline has no script cache to lean on
            return [self.commit(commit, now) for commit in commits]
        pipe = self.client.pipeline(transaction=False)
        queued = copy.copy(self)
        queued._commit = _Queued(self._commit, pipe)  # type: ignore[assignment]
        # Each placeholder says which events that commit pushes itself, should it succeed.
        placeholders = [RedisStore.commit(queued, commit, now) for commit in commits]
        replies = pipe.execute()
        if len(replies) != len(commits):  # commit() no longer calls one script: a bug here
            raise RuntimeError(f"{len(commits)} commits queued {len(replies)} scripts")
        results = []
        for (status, version), placeholder in zip(replies, placeholders, strict=True):
            text = cast(CommitStatus, _text(status))  # "rebind": retried the single way
            published = placeholder.published if text == "ok" else ()
            results.append(CommitResult(text, int(version), published))
        return results

    def timeline(self, order_id: str) -> list[dict[str, Any]]:
        return [
            {**TIMELINE_DEFAULTS, **json.loads(line)}  # older lines have every key
            for line in self.client.lrange(self.keys.timeline(order_id), 0, -1)
        ]

    def _loaded(self, raw: bytes | str | None, version: bytes | str | None) -> Loaded:
        if raw is None:
            return Loaded(None, 0)
        return Loaded(self.codec.decode(raw), int(version or 0))

    # --- in-flight inbound messages (backlog safety) ---------------------------------------

    def mark_inflight(
        self, order_id: str, task_id: str, occurred_at: datetime, received_at: datetime
    ) -> None:
        value = f"{epoch(occurred_at)} {epoch(received_at)}"
        self.client.hset(self.keys.inflight(order_id), task_id, value)

    def clear_inflight(self, order_id: str, task_id: str) -> None:
        self.client.hdel(self.keys.inflight(order_id), task_id)

    def inflight(self, order_id: str) -> dict[str, tuple[datetime, datetime]]:
        return _inflight_entries(self.client.hgetall(self.keys.inflight(order_id)))

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
        pipe.hgetall(self.keys.inflight(order_id))
        *depths, inflight = pipe.execute()
        return sum(int(depth) for depth in depths), _inflight_entries(inflight)

    # --- deadline schedule (global indexes: one key, or one per shard) -------------------

    def _walk(self) -> list[int]:
        """Every shard once, starting one further each walk, so that a batch limit reached
        before the last shard does not always leave the same shards for the next tick."""
        count = self.keys.shards
        first, self._first_shard = self._first_shard, (self._first_shard + 1) % count
        return [(first + step) % count for step in range(count)]

    def arm_due(
        self, until: datetime, limit: int, recheck_after: float, now: datetime | None = None
    ) -> list[tuple[str, str, datetime]]:
        """Move deadlines due before `until` to the armed set; returns (order, id, due).
        The sweep looks at one again `recheck_after` s after its due time or `now`."""
        floor = epoch(now) if now is not None else 0
        armed: list[tuple[str, str, datetime]] = []
        for shard in self._walk():
            if len(armed) >= limit:
                break
            flat = self._arm(
                keys=[self.keys.schedule(shard), self.keys.armed(shard)],
                args=[epoch(until), limit - len(armed), recheck_after, floor],
            )
            armed += [
                (*keys.parse_deadline_member(flat[i]), from_epoch(float(flat[i + 1])))
                for i in range(0, len(flat), 2)
            ]
        return armed

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
        lost: list[tuple[str, str]] = []
        alive: dict[str, bool] = {}  # holder -> alive, read once per walk
        for shard in self._walk():
            if len(lost) >= limit:
                break
            armed, holders = self.keys.armed(shard), self.keys.holders(shard)
            gone = gone_holders(self.client, armed, holders, epoch(now), limit, alive)
            if gone is None:
                continue  # nothing overdue in this shard
            members = self._sweep(
                keys=[armed, holders, self.keys.resends(shard)],
                args=[
                    epoch(now),
                    grace,
                    limit - len(lost),
                    backoff_cap,
                    max_holding,
                    queued,
                    *gone,
                ],
            )
            lost += [keys.parse_deadline_member(member) for member in members]
        return lost

    def hold(self, order_id: str, deadline_id: str, holder: str, now: datetime) -> None:
        """`holder`, a worker incarnation (node name and boot id), received the deadline's
        task: the sweep leaves it to that process while its alive key lasts."""
        member = keys.deadline_member(order_id, deadline_id)
        holders = self.keys.holders(self.keys.shard_of(order_id))
        self.client.hset(holders, member, f"{holder} {epoch(now)}")

    def hold_many(self, deadlines: Sequence[tuple[str, str]], holder: str, now: datetime) -> None:
        """`hold` for every (order, deadline) of a batch task, in one write."""
        if deadlines:
            value = f"{holder} {epoch(now)}"
            by_shard: dict[int, dict[Any, Any]] = {}  # redis-py types its keys invariantly
            for order_id, deadline_id in deadlines:
                mapping = by_shard.setdefault(self.keys.shard_of(order_id), {})
                mapping[keys.deadline_member(order_id, deadline_id)] = value
            for shard, mapping in by_shard.items():
                self.client.hset(self.keys.holders(shard), mapping=mapping)

    def release(self, order_id: str, deadline_id: str, even_if_armed: bool = False) -> None:
        """Forget the holder of a deadline: no longer armed (a stale task ran), or its task
        failed and the sweep should send it again."""
        member = keys.deadline_member(order_id, deadline_id)
        shard = self.keys.shard_of(order_id)
        if even_if_armed or self.client.zscore(self.keys.armed(shard), member) is None:
            self.client.hdel(self.keys.holders(shard), member)

    def heartbeat(self, holder: str, ttl_ms: int) -> None:
        """`holder` (a worker incarnation) is alive for the next `ttl_ms` (one key, in
        whatever slot: the sweep reads it outside its script)."""
        self.client.set(keys.alive(holder), "1", px=ttl_ms)

    def next_deadlines(self, count: int) -> list[tuple[str, str, datetime | None, str]]:
        """The next `count` pending deadlines overall: (order, id, due or None, where).
        Up to `count` of each shard; the caller sorts and cuts."""
        rows: list[tuple[str, str, datetime | None, str]] = []
        for shard in range(self.keys.shards):
            for member, score in self._first_scored(self.keys.schedule(shard), count):
                rows.append((*keys.parse_deadline_member(member), from_epoch(score), "scheduled"))
            for member, _ in self._first_scored(self.keys.armed(shard), count):
                rows.append((*keys.parse_deadline_member(member), None, "armed"))
        return rows

    def _first_scored(self, key: str, count: int) -> list[tuple[bytes | str, float]]:
        # withscores=True answers (member, score) pairs, the score cast by float
        scored = self.client.zrange(key, 0, count - 1, withscores=True)
        return cast(list[tuple[bytes | str, float]], scored)

    def schedule_size(self) -> tuple[int, int]:
        scheduled = armed = 0
        for shard in range(self.keys.shards):
            scheduled += int(self.client.zcard(self.keys.schedule(shard)))
            armed += int(self.client.zcard(self.keys.armed(shard)))
        return scheduled, armed

    def lateness_values(self) -> list[float]:
        """Recent firing lateness values (ms): the newest 10 000 over all shards."""
        per_shard = max(1, 10_000 // self.keys.shards)
        values: list[float] = []
        for shard in range(self.keys.shards):
            raw = self.client.lrange(self.keys.lateness(shard), 0, per_shard - 1)
            values += [float(value) for value in raw]
        return values

    # --- outbox --------------------------------------------------------------------------

    def confirm_published(self, entry_ids: list[str]) -> None:
        for shard, ids in self._outbox.by_shard(entry_ids).items():
            pipe = self.client.pipeline(transaction=True)  # one shard: one slot
            pipe.zrem(self.keys.outbox_pending(shard), *ids)
            pipe.hdel(self.keys.outbox_entries(shard), *ids)
            pipe.execute()

    def tick_has_work(self, arm_until: datetime, now: datetime, relay_before: datetime) -> bool:
        """Whether a tick would do anything, in one round trip: a deadline to arm before
        `arm_until`, an armed one overdue at `now` (maybe lost), an outbox entry committed
        before `relay_before` and not confirmed (the conditions of arm_due, lost_armed and
        stale_outbox)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.zrangebyscore(self.keys.schedule(shard), "-inf", epoch(arm_until), 0, 1)
            pipe.zrangebyscore(self.keys.armed(shard), "-inf", epoch(now), 0, 1)
            pipe.zrangebyscore(self.keys.outbox_pending(shard), "-inf", epoch(relay_before), 0, 1)
        return any(pipe.execute())

    def stale_outbox(self, older_than: datetime, limit: int) -> list[tuple[str, dict[str, Any]]]:
        entries: list[tuple[str, dict[str, Any]]] = []
        for shard in self._walk():
            if len(entries) >= limit:
                break
            pending = self.keys.outbox_pending(shard)
            # without withscores, members only
            ids = cast(
                list[bytes | str],
                self.client.zrangebyscore(
                    pending, "-inf", epoch(older_than), 0, limit - len(entries)
                ),
            )
            if not ids:
                continue
            raw = self.client.hmget(self.keys.outbox_entries(shard), ids)
            found = [
                (_text(entry_id), json.loads(body))
                for entry_id, body in zip(ids, raw, strict=True)
                if body is not None  # None: confirmed between the two reads
            ]
            self._outbox.remember([entry_id for entry_id, _ in found], shard)
            entries += found
        return entries


def _timeline_line(line: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A timeline line without the values most lines have (restored when read)."""
    kept = {k: v for k, v in line.items() if defaults.get(k, _ABSENT) != v}
    return json.dumps(kept, separators=(",", ":"), default=str)


_ABSENT = object()


def _ms(span: timedelta) -> int:
    """A TTL in milliseconds, at least 1 (PEXPIRE 0 would delete the key at once)."""
    return max(1, round(span.total_seconds() * 1000))


class _Queued:
    """The commit script, queued on a pipeline: `commit` sees a placeholder answer and
    `commit_many` reads the real ones from the pipeline."""

    def __init__(self, script: Any, pipe: Any) -> None:
        self.script, self.pipe = script, pipe

    def __call__(self, keys: list[Any], args: list[Any]) -> tuple[bytes, int]:
        self.script(keys=keys, args=args, client=self.pipe)
        return b"ok", 0


def _inflight_entries(raw: dict[Any, Any]) -> dict[str, tuple[datetime, datetime]]:
    entries: dict[str, tuple[datetime, datetime]] = {}
    for task_id, value in raw.items():
        occurred, received = (float(part) for part in _text(value).split())
        entries[_text(task_id)] = (from_epoch(occurred), from_epoch(received))
    return entries
