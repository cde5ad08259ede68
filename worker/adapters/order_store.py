"""Redis store, orders: an order's state, its messages' ids and digests, its timeline,
and the one atomic commit of a decision (docs/design.md).

Every change to an order goes through one Lua script (commit.lua), so the state, the
message id, the deadlines and the outbox entries are written together or not at all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from redis.exceptions import NoScriptError

from worker.adapters import keys, state_codec
from worker.adapters.direct_publish import BINDINGS, DirectEvents
from worker.adapters.inflight_store import inflight_entries
from worker.adapters.shards import StateClient
from worker.adapters.state_codec import StateCodec
from worker.adapters.store_base import StoreBase, epoch, ms, script, text
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


STATE_FIELDS = ["state", "version", state_codec.KNOWN_FIELD]
"""An order's hash as loaded: release 1.1 reads the first two (state_codec.py, `known`)."""


class OrderStore(StoreBase):
    timeline_defaults = TIMELINE_DEFAULTS
    digest_chars = DIGEST_CHARS

    def __init__(
        self,
        client: StateClient,
        direct: DirectEvents | None = None,
        keyspace: keys.Keyspace | None = None,
    ) -> None:
        super().__init__(client, direct, keyspace)
        self._commit = client.register_script(script("commit.lua"))
        self._begin = client.register_script(script("begin.lua"))
        self.codec = StateCodec(client)

    def load(self, order_id: str) -> Loaded:
        raw, version, known = self.client.hmget(self.keys.order_state(order_id), STATE_FIELDS)
        if raw is None:  # no state: is it an order known to have expired? (rare: 2nd trip)
            return Loaded(None, 0, bool(self.client.exists(self.keys.expired(order_id))))
        return self._loaded(raw, version, known)

    def load_for_firing(self, order_id: str, queue_keys: list[str]) -> tuple[Loaded, Backlog]:
        """A deadline's order and its backlog (see `backlog`), read in one round trip.

        The backlog is read with the state, not after it: the commit's version check still
        fences anything committed in between, exactly as with two separate reads."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.order_state(order_id), STATE_FIELDS)
        for key in queue_keys:
            pipe.llen(key)
        pipe.hgetall(self.keys.inflight(order_id))
        (raw, version, known), *depths, inflight = pipe.execute()
        backlog = sum(int(depth) for depth in depths), inflight_entries(inflight)
        return self._loaded(raw, version, known), backlog

    def load_many_for_firing(
        self, order_ids: Sequence[str], queue_keys: list[str]
    ) -> list[tuple[Loaded, Backlog]]:
        """`load_for_firing` for many orders in one round trip: the queue's depth is read
        once, in the same pipeline. With no `queue_keys` the depth is 0 (another broker)."""
        pipe = self.client.pipeline(transaction=False)
        for key in queue_keys:
            pipe.llen(key)
        for order_id in order_ids:
            pipe.hmget(self.keys.order_state(order_id), STATE_FIELDS)
            pipe.hgetall(self.keys.inflight(order_id))
        replies = pipe.execute()
        depth = sum(int(depth) for depth in replies[: len(queue_keys)])
        rows = replies[len(queue_keys) :]
        return [
            (self._loaded(*rows[i]), (depth, inflight_entries(rows[i + 1])))
            for i in range(0, len(rows), 2)
        ]

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
        status, raw, version, *rest = self._begin(
            keys=[
                self.keys.message_digests(order_id),
                self.keys.seen_messages(order_id),
                self.keys.order_state(order_id),
                self.keys.inflight(order_id),
                self.keys.expired(order_id),
            ],
            args=[message_id, digest[: self.digest_chars], task_id, ms(retain)],
        )
        begun = cast(BegunStatus, text(status))
        if begun != "new":
            return Begun(begun)
        if raw is None:  # 1.2: the tombstone says whether the order closed and expired
            return Begun(begun, Loaded(None, 0, bool(rest and int(rest[0]))))
        return Begun(begun, self._loaded(raw, version, rest[1] if len(rest) > 1 else None))

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
            commit.message_id or "",  # commit.lua: "" for none
            commit.inflight_task_id or "",
            epoch(now),
            TIMELINE_CAP,
            "" if commit.lateness is None else commit.lateness.stored(),
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
        args.append("" if commit.expire_in is None else ms(commit.expire_in))
        args.append("" if commit.tombstone_in is None else ms(commit.tombstone_in))
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
                space.claims(shard),
                space.resends(shard),
                space.lateness(shard),
                space.message_digests(oid),
                space.expired(oid),
                *extra_keys,
            ],
            args=args + extra_args,
        )
        return CommitResult(cast(CommitStatus, text(status)), int(version))

    def commit_many(self, commits: Sequence[Commit], now: datetime) -> list[CommitResult]:
        """Many `commit`s in one round trip, each still its own atomic, version-checked
        script: `commit` builds each call as usual, queued on a pipeline instead of sent.

        The pipeline sends EVALSHA alone, without redis-py's SCRIPT EXISTS round trip
        before it: a script missing from Redis's cache (a restart, SCRIPT FLUSH) answers
        NOSCRIPT and does nothing, and those commits are sent again once it is loaded."""
        if not commits:
            return []
        if self.keys.clustered:  # a cluster pipeline has no script cache to lean on
            return [self.commit(commit, now) for commit in commits]
        pipe = self.client.pipeline(transaction=False)
        queued = copy.copy(self)
        calls = _Queued(self._commit, pipe)
        queued._commit = calls  # type: ignore[assignment]
        # Each placeholder says which events that commit pushes itself, should it succeed.
        placeholders = [OrderStore.commit(queued, commit, now) for commit in commits]
        replies = pipe.execute(raise_on_error=False)
        if len(replies) != len(commits):  # commit() no longer calls one script: a bug here
            raise RuntimeError(f"{len(commits)} commits queued {len(replies)} scripts")
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # none of these ran: load the script once, send them again
            self.client.script_load(self._commit.script)
            again = self.client.pipeline(transaction=False)
            for i in missing:
                again.evalsha(
                    self._commit.sha,
                    len(calls.queued[i][0]),
                    *calls.queued[i][0],
                    *calls.queued[i][1],
                )
            for i, reply in zip(missing, again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        results = []
        for (keys_, args), reply, placeholder in zip(
            calls.queued, replies, placeholders, strict=True
        ):
            if isinstance(reply, NoScriptError):  # flushed again meanwhile: the single way
                reply = self._commit(keys=keys_, args=args)
            elif isinstance(reply, Exception):
                raise reply
            status, version = reply
            answer = cast(CommitStatus, text(status))  # "rebind": retried the single way
            published = placeholder.published if answer == "ok" else ()
            results.append(CommitResult(answer, int(version), published))
        return results

    def timeline(self, order_id: str) -> list[dict[str, Any]]:
        return [
            {**TIMELINE_DEFAULTS, **json.loads(line)}  # older lines have every key
            for line in self.client.lrange(self.keys.timeline(order_id), 0, -1)
        ]

    def _loaded(
        self,
        raw: bytes | str | None,
        version: bytes | str | None,
        known: bytes | str | None = None,
    ) -> Loaded:
        if raw is None:
            return Loaded(None, 0)
        return Loaded(self.codec.decode(raw, known), int(version or 0))


def _timeline_line(line: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A timeline line without the values most lines have (restored when read)."""
    kept = {k: v for k, v in line.items() if defaults.get(k, _ABSENT) != v}
    return json.dumps(kept, separators=(",", ":"), default=str)


_ABSENT = object()


class _Queued:
    """The commit script, queued on a pipeline as a bare EVALSHA: `commit` sees a
    placeholder answer and `commit_many` reads the real ones from the pipeline.

    The arguments are queued as the bytes redis-py would send (its own encoder, text
    as UTF-8 here at once): a commit has some forty, and redis-py's packing of a batch
    costs less when each is bytes already."""

    def __init__(self, script: Any, pipe: Any) -> None:
        self.script, self.pipe = script, pipe
        self.queued: list[tuple[list[Any], list[Any]]] = []
        encoder = pipe.get_encoder()
        self._encode, self._text = encoder.encode, (encoder.encoding, encoder.encoding_errors)

    def __call__(self, keys: list[Any], args: list[Any]) -> tuple[bytes, int]:
        encode, (encoding, errors) = self._encode, self._text
        wire = [
            value.encode(encoding, errors) if type(value) is str else encode(value)
            for value in (*keys, *args)
        ]
        self.pipe.evalsha(self.script.sha, len(keys), *wire)
        self.queued.append((keys, args))
        return b"ok", 0
