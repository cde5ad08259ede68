"""Redis store, orders: an order's state, its messages' ids and digests, its timeline,
and the one atomic commit of a decision (docs/design.md).

Every change to an order goes through one Lua script (commit.lua), so the state, the
message id, the deadlines and the outbox entries are written together or not at all.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from hiredis import pack_command
from redis.exceptions import NoScriptError, ResponseError

from worker.adapters import compact_json, keys, state_codec
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
        commands: list[tuple[Any, ...]] = [("LLEN", key) for key in queue_keys]
        for order_id in order_ids:
            commands.append(("HMGET", self.keys.order_state(order_id), *STATE_FIELDS))
            commands.append(("HGETALL", self.keys.inflight(order_id)))
        if self.keys.clustered:  # a cluster pipeline routes each command to its node
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = pipe.execute()
        else:
            replies = self._round_trip(
                [pack_command(command) for command in commands],
                [command[0] for command in commands],
            )
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
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
        keys_, args = self._begin_call(order_id, message_id, digest, task_id, retain)
        return self._begun(self._begin(keys=keys_, args=args))

    def begin_many(
        self, begins: Sequence[tuple[str, str, str, str]], retain: timedelta = DEFAULT_RETENTION
    ) -> list[Begun]:
        """`begin_message` for many messages (order id, message id, digest, task id) in one
        round trip, each still its own begin.lua: a batch of inbound messages
        (Service.handle_many), of different orders."""
        if self.keys.clustered:  # a cluster pipeline has no script cache to lean on
            return [self.begin_message(*begin, retain) for begin in begins]
        calls = [self._begin_call(*begin, retain) for begin in begins]
        return [self._begun(reply) for reply in self._evalsha_many(self._begin, calls)]

    def _begin_call(
        self, order_id: str, message_id: str, digest: str, task_id: str, retain: timedelta
    ) -> tuple[list[Any], list[Any]]:
        space = self.keys
        return (
            [
                space.message_digests(order_id),
                space.seen_messages(order_id),
                space.order_state(order_id),
                space.inflight(order_id),
                space.expired(order_id),
            ],
            [message_id, digest[: self.digest_chars], task_id, ms(retain)],
        )

    def _begun(self, reply: list[Any]) -> Begun:
        status, raw, version, *rest = reply
        begun = cast(BegunStatus, text(status))
        if begun != "new":
            return Begun(begun)
        if raw is None:  # 1.2: the tombstone says whether the order closed and expired
            return Begun(begun, Loaded(None, 0, bool(rest and int(rest[0]))))
        return Begun(begun, self._loaded(raw, version, rest[1] if len(rest) > 1 else None))

    def _evalsha_many(
        self, script_: Any, calls: Sequence[tuple[list[Any], list[Any]]]
    ) -> list[Any]:
        """One script called many times in one round trip, each call its own atomic run.

        The calls go as EVALSHA alone, without redis-py's SCRIPT EXISTS round trip before
        them: a script missing from Redis's cache (a restart, SCRIPT FLUSH) answers
        NOSCRIPT and does nothing, and those calls are sent again once it is loaded. The
        arguments are encoded as redis-py would (its own encoder) and packed by hiredis at
        once, one write for all (`_round_trip`): redis-py's pipeline packs each argument
        in Python, about half the CPU of a commit's call. An error answer is raised."""
        encoder = self.client.get_encoder()  # once a batch: redis-py makes one per call
        packed = [_pack_evalsha(encoder, script_.sha, keys_, args) for keys_, args in calls]
        replies = self._round_trip(packed, ["EVALSHA"] * len(packed))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # none of these ran: load the script once, send them again
            self.client.script_load(script_.script)
            again = self._round_trip([packed[i] for i in missing], ["EVALSHA"] * len(missing))
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # flushed again meanwhile: the single way
                replies[i] = script_(keys=calls[i][0], args=calls[i][1])
            elif isinstance(reply, Exception):
                raise reply
        return replies

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
            args += [entry_id, compact_json.dumps(entry)]
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
        script: `commit` builds each call as usual, recorded instead of sent, and the
        calls go in one pipeline (`_evalsha_many`)."""
        if not commits:
            return []
        if self.keys.clustered:  # a cluster pipeline has no script cache to lean on
            return [self.commit(commit, now) for commit in commits]
        queued = copy.copy(self)
        calls = _Recorded()
        queued._commit = calls  # type: ignore[assignment]
        # Each placeholder says which events that commit pushes itself, should it succeed.
        placeholders = [OrderStore.commit(queued, commit, now) for commit in commits]
        if len(calls.calls) != len(commits):  # commit() no longer calls one script: a bug
            raise RuntimeError(f"{len(commits)} commits made {len(calls.calls)} script calls")
        results = []
        for reply, placeholder in zip(
            self._evalsha_many(self._commit, calls.calls), placeholders, strict=True
        ):
            status, version = reply
            answer = cast(CommitStatus, text(status))  # "rebind": retried the single way
            published = placeholder.published if answer == "ok" else ()
            results.append(CommitResult(answer, int(version), published))
        return results

    def _round_trip(self, packed: list[bytes], names: list[str]) -> list[Any]:
        """Commands packed already (by hiredis), sent in one write on one pooled
        connection, and their replies read in turn, each through redis-py's reply callback
        for its command `names` (as a pipeline would; an error reply is returned, as with
        raise_on_error=False). A broken connection is dropped and the error raised: the
        caller's batch goes the single way, or its task is retried."""
        client = cast(redis.Redis, self.client)
        pool = client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]
            replies: list[Any] = []
            for name in names:
                try:
                    replies.append(client.parse_response(connection, name))  # type: ignore[no-untyped-call]
                except ResponseError as error:
                    replies.append(error)
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)
        return replies

    def timeline(self, order_id: str) -> list[dict[str, Any]]:
        return [
            {**TIMELINE_DEFAULTS, **compact_json.loads(line)}  # older lines have every key
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


def _pack_evalsha(encoder: Any, sha: Any, keys_: list[Any], args: list[Any]) -> bytes:
    """One EVALSHA, packed as redis-py's `encoder` (the client's) would write its
    arguments. hiredis packs str (as UTF-8), int, float and bytes itself, byte for byte as
    redis-py's encoder does with its default UTF-8 and strict errors (a test compares
    them); any other encoding,
    or a value hiredis does not take (a bool, None, a bytearray), goes through redis-py's
    encoder, which answers as before (a DataError for a bool or None). Packing a
    firing's 39 arguments one by one in Python took 11 µs, at once 4 µs."""
    if encoder.encoding.lower() in _UTF_8 and encoder.encoding_errors == "strict":
        try:
            return cast(bytes, pack_command((b"EVALSHA", sha, len(keys_), *keys_, *args)))
        except TypeError:  # a type only redis-py's encoder knows (or refuses): its answer
            pass
    encode, encoding, errors = encoder.encode, encoder.encoding, encoder.encoding_errors
    return cast(
        bytes,
        pack_command(
            (
                b"EVALSHA",
                sha,
                len(keys_),
                *(
                    value.encode(encoding, errors) if type(value) is str else encode(value)
                    for value in (*keys_, *args)
                ),
            )
        ),
    )


_UTF_8 = frozenset({"utf-8", "utf8"})


def _timeline_line(line: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A timeline line without the values most lines have (restored when read)."""
    kept = {k: v for k, v in line.items() if defaults.get(k, _ABSENT) != v}
    return compact_json.dumps(kept, default=str)


_ABSENT = object()


class _Recorded:
    """The commit script as `commit_many` hands it to `commit`: each call is recorded, not
    sent, and answered with a placeholder; `commit_many` sends them all together."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], list[Any]]] = []

    def __call__(self, keys: list[Any], args: list[Any]) -> tuple[bytes, int]:
        self.calls.append((keys, args))
        return b"ok", 0
