# mypy: disallow-untyped-calls=False
# (kombu's Redis transport, which this subclasses, is unannotated)
"""Reliable fetch: kombu's Redis transport without the kill -9 window (docs/reliable-fetch.md).

kombu pops a message with BRPOP and records it in its `unacked` hash in a second step, so a
worker killed in between loses it (celery/celery#7950, kombu#305). Here one Lua script
(shell/fetch.lua) pops the message and records it as unacked and as taken by this
consumer, atomically. Every consuming channel is a consumer with its own id and alive key,
beaten every second by a thread; every second it also gives back (shell/
fetch_restore.lua) the messages of consumers whose alive key expired. After a kill -9 the
dead consumer's messages are back at the head of their queues within the alive expiry plus
one beat, not the visibility timeout, which stays as kombu's last resort.

A script cannot block, so when it finds every list empty an idle consumer waits in
`BLMOVE <its wait queue> <its moving list>` (the transport option `fetch_wait_queue` if it
consumes that queue, else its first; at most `fetch_block_timeout`, 2 s, or 1 s within 5 s
of starting or of taking a message): the message is
in the queue or in the consumer's moving list at every moment. The next script goes out in
the same write, behind the BLMOVE: Redis runs it as the wait ends, and it takes the moved
message (and looks at every list again) without another round trip.
Queues, priority steps, fair rotation, fanout (pidbox), no-ack queues and the visibility
timeout are kombu's own. Selected in worker/celery.py for redis:// brokers.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from queue import Empty
from time import monotonic, time
from typing import Any, NoReturn

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError, ResponseError

from schemas.dead_letters import dead_letter_body
from worker.adapters import keys, topology
from worker.logging import get_logger
from worker.observability import record
from worker.shell.screen import raw_original

log = get_logger("aftersales.transport")

BLOCK_TIMEOUT = 2.0  # an idle consumer waits on its wait queue at most this long (seconds)
"""Default of the transport option `fetch_block_timeout` (the worker passes
AFTERSALES_FETCH_WAIT): a message arriving in the wait queue wakes the consumer at once;
one in another queue (or another priority step) waits for the end of the block at most.
Each end of a block is a wake-up of an idle worker: the largest part of what it costs. A
second under kombu's `brpop_timeout` plus `health_check_interval` (1 + 25 s), after which
kombu drops a connection whose wait has not answered, and under `socket_timeout`."""
BUSY_BLOCK_TIMEOUT = 1.0
"""The wait of a consumer that took a message, or started, within the last RECENT seconds,
if shorter than `fetch_block_timeout`: while beat has work its tick comes every second
and what it arms follows, through queues the wait does not watch; a deadline that came
due as its order's message arrived waits for both, and a worker started after a crash has
its predecessor's to catch up. A consumer left alone longer waits the whole
`fetch_block_timeout`."""
RECENT = 5.0
BINDING_REFRESH_PERIOD = 10.0
"""Seconds between two looks of kombu's binding-expiry timer (its own: every second). It
refreshes the binding tables of expiring queues every third of their expiry (an hour at
least) and sweeps overdue ones every minute, so ten seconds changes neither; each look is
a wake-up of an idle worker."""
BEAT_PERIOD = 1.0  # a consumer's alive beat and restore sweep
ALIVE_TTL_MS = 5_000  # five missed beats: a paused process is not declared dead
RESTORE_GAP = 3 * BEAT_PERIOD  # longer without a restore: Redis was down, or no consumer lived
RESTORE_QUIET = 3 * BEAT_PERIOD  # then nobody is declared dead until the living beat again
ERROR_BACKOFF = 1.0  # after a Redis error answering the fetch, wait before trying again
INFLIGHT_PROPERTY = "aftersales_inflight"
"""Message property: the order id whose in-flight hash the fetch recorded the message in."""
FETCH_BATCH = 16  # messages one fetch takes at most (bounded by the free prefetch);
# the transport option `fetch_batch` (worker/celery.py: AFTERSALES_INBOUND_BATCH when larger)
TAG_SEPARATOR = "|"  # delivery tag = consumer id | random: ack finds the owner in the tag


def _script(name: str) -> str:
    return resources.files("worker.shell").joinpath(name).read_text()


FETCH = _script("fetch.lua")
FETCH_SHA = hashlib.sha1(FETCH.encode()).hexdigest()
"""EVALSHA's name for it; loaded at the first NOSCRIPT, so channels that only publish never
pay for a SCRIPT LOAD."""
RESTORE = _script("fetch_restore.lua")


def owner_of(delivery_tag: Any) -> str | None:
    """The consumer that fetched a message, read from its delivery tag; None for a tag the
    fetch script did not make (kombu's own, e.g. basic_get)."""
    tag = delivery_tag.decode() if isinstance(delivery_tag, bytes) else str(delivery_tag)
    owner, separator, _ = tag.rpartition(TAG_SEPARATOR)
    return owner if separator and owner else None


class QoS(kombu_redis.QoS):
    """kombu's QoS, except that the fetch script has already written the unacked records,
    and that an ack also clears the owner's taken entry."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        if owner_of(delivery_tag) is None:
            super().append(message, delivery_tag)
        else:
            virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: Any) -> None:
        self._check_connection(delivery_tag, "ack")
        super().ack(delivery_tag)

    def ack_many(self, delivery_tags: list[Any]) -> None:
        """`ack` for many messages of this channel in one round trip (worker/shell/batch.py)."""
        if not delivery_tags:
            return
        self._check_connection(delivery_tags[0], "ack")
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            for delivery_tag in delivery_tags:
                self._remove_from_indices(delivery_tag, pipe)
            pipe.execute()
        for delivery_tag in delivery_tags:
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        self._check_connection(delivery_tag, "requeue" if requeue else "reject")
        super().reject(delivery_tag, requeue)

    def _check_connection(self, delivery_tag: Any, what: str) -> None:
        """A message ends (acked, rejected, requeued) after its channel was closed with its
        dropped connection (Redis lost; Celery reconnects on new channels). kombu would
        build a client from that connection, None: AttributeError, "Unrecoverable error",
        the worker exits (docs/chaos.md, finding 8). Say so as a connection error instead,
        which Celery logs and goes on; the message stays taken by this channel's consumer,
        whose beat stopped with the close, so the restore gives it back to its queue."""
        transport = self.channel.connection
        if self.channel._pool is None and (transport is None or transport.client is None):
            log.warning(
                "message ended after its connection was dropped; it comes back",
                action=what,
                delivery_tag=str(delivery_tag),
            )
            raise redis.exceptions.ConnectionError(
                f"cannot {what} {delivery_tag}: its channel's connection was dropped"
            )

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        pipe = super()._remove_from_indices(delivery_tag, pipe)
        owner = owner_of(delivery_tag)
        if owner is not None:
            pipe.hdel(keys.fetch_taken(owner), delivery_tag)
        return pipe


class Channel(kombu_redis.Channel):
    QoS = QoS
    fetch_block_timeout = BLOCK_TIMEOUT
    fetch_wait_queue = ""
    fetch_inflight: dict[str, Any] | None = None
    fetch_batch = FETCH_BATCH
    from_transport_options = (  # type: ignore[assignment]  # three options more than kombu
        *kombu_redis.Channel.from_transport_options,
        "fetch_block_timeout",
        "fetch_wait_queue",
        "fetch_inflight",
        "fetch_batch",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._noack_queues: set[str] = set()
        self._next_fetch_at = 0.0
        self._pending: tuple[str, list[tuple[str, bool]]] | None = None
        self._wait: tuple[str, str, bool] | None = None  # (queue, list, no-ack) of the wait key
        self._blocking = False  # the next fetch (or the one out) is a BLMOVE, then the script
        # monotonic: when a fetch last took a message; a new consumer counts as having just
        # taken one (a worker started after a crash has catching up to do)
        self._took_at = monotonic()
        self._consumed_changes = 0  # queues added to this consumer so far
        self._fetched_changes = 0  # ... when the fetch out was prepared
        self._heartbeat: Heartbeat | None = None
        self._pid = os.getpid()
        self.consumer_id = _new_consumer_id()
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("reliable fetch does not support kombu's global_keyprefix")
        self.fetch_block_timeout = float(self.fetch_block_timeout)
        # A wait must answer a second before kombu's health check (when on) drops its
        # connection as stale, and before the socket's own timeout (when set) gives up.
        check = float(self.health_check_interval or 0)
        limits = [float(self.brpop_timeout or 1) + check - 1] if check else []
        if self.socket_timeout:
            limits.append(float(self.socket_timeout) - 1)
        longest = min(limits, default=float("inf"))
        if not 0 < self.fetch_block_timeout <= longest:
            raise ValueError(
                f"fetch_block_timeout must be above 0 and at most {longest:g} s (a second "
                "under kombu's brpop_timeout plus health_check_interval, and under "
                f"socket_timeout), not {self.fetch_block_timeout:g}"
            )

    def basic_consume(self, queue: str, no_ack: bool = False, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._noack_queues.add(queue)
        else:
            self._noack_queues.discard(queue)
        self._consumed_changes += 1  # a fetch out now does not look at this queue
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Send the fetch script (kombu sends BRPOP here), or, after the script found
        nothing, the blocking BLMOVE it prepared followed by the script in the same write:
        Redis runs the script the moment the BLMOVE returns, so a message it moved is
        taken and recorded without another round trip. The replies come back through the
        same poller."""
        if monotonic() < self._next_fetch_at:
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self._ensure_heartbeat()
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]  # kombu: None at first
        script = ("EVALSHA", FETCH_SHA, *self._fetch_arguments(queues))
        if self._blocking and self._wait is not None:
            blmove = (
                "BLMOVE",
                self._wait[1],
                keys.fetch_moving(self.consumer_id),
                "RIGHT",
                "LEFT",
                self.wait_seconds(),
            )
            connection.send_packed_command(connection.pack_commands([blmove, script]))
            return
        self._blocking = False
        connection.send_command(*script)

    def wait_seconds(self) -> float:
        """How long the next BLMOVE waits: `fetch_block_timeout`, or BUSY_BLOCK_TIMEOUT if
        shorter while this consumer took a message, or started, within the last RECENT
        seconds."""
        if monotonic() - self._took_at < RECENT:
            return min(self.fetch_block_timeout, BUSY_BLOCK_TIMEOUT)
        return self.fetch_block_timeout

    def _fetch_arguments(self, queues: list[str]) -> list[Any]:
        """The fetch script's key count, KEYS and ARGV for these queues; remembers the
        delivery tag and lists it was sent with, and the list to wait on if it finds
        nothing. Sent after a BLMOVE, the script's `now` is when the wait began: the
        unacked score and in-flight mark are at most `fetch_block_timeout` older."""
        lists = [
            (queue, self._q_for_pri(queue, pri), queue in self._noack_queues)
            for pri in self.priority_steps
            for queue in queues
        ]
        # The wait goes to the queue whose messages must not wait (the worker's inbound
        # queue), else the first the consumer named, not the rotation's.
        first = self.fetch_wait_queue if self.fetch_wait_queue in queues else None
        first = first or next((q for q in self._active_queues if q in queues), queues[0])
        block = (first, self._q_for_pri(first, 0), first in self._noack_queues)
        tag = f"{self.consumer_id}{TAG_SEPARATOR}{uuid.uuid4().hex}"
        script_keys, argv = fetch_arguments(
            self.unacked_key,
            self.unacked_index_key,
            self.consumer_id,
            tag,
            lists,
            moved=self._wait,
            block=block[1],
            count=self._free_prefetch(),
            inflight=self.fetch_inflight,
        )
        self._pending = tag, [(queue, no_ack) for queue, _, no_ack in lists]
        self._fetched_changes = self._consumed_changes
        self._wait_next = block
        return [len(script_keys), *script_keys, *argv]

    def _free_prefetch(self) -> int:
        """How many messages one fetch takes: what the prefetch limit leaves room for (at
        most FETCH_BATCH; one without a limit, as kombu's BRPOP)."""
        qos = self.qos
        if not qos.prefetch_count:
            return 1
        return max(1, min(self.fetch_batch, int(qos.prefetch_count) - len(qos._delivered)))

    def _brpop_read(self, **options: Any) -> bool:
        if not self._in_poll:  # its reply was read already (given back): nothing to wait for
            raise Empty()
        try:
            if self._blocking:  # the BLMOVE's reply, then the script's sent with it
                self._blocking = False
                self._read_reply("BLMOVE", **options)
            reply = self._read_reply("EVALSHA", **options)
            if not reply or self._pending is None:
                # All empty: block next, unless a queue was added since the script was
                # prepared (add_consumer): it did not look there; look again at once.
                fresh = self._fetched_changes == self._consumed_changes
                if reply is None and self._pending is not None and fresh:
                    self._wait, self._blocking = self._wait_next, True
                raise Empty()
            self._took_at = monotonic()
            return self._deliver_batch(reply)
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu's own reset
            self._flush_brpop_reauth()

    def _deliver_batch(self, reply: list[Any]) -> bool:
        """Hand each message of the script's reply to kombu, every one of them even if one
        fails (they are all recorded as taken: none may be left behind); then raise the
        first failure, as kombu would have for it. A reply answered after the consumer of
        its queue was cancelled (a warm shutdown) goes back whole, to the head of its lists
        in the order taken: kombu would requeue it at the tail ("No consumers"), behind any
        barrier a deadline sent while the message was ahead of it (docs/design.md,
        'Backlog safety'): the barrier would come out first and the deadline fire."""
        assert self._pending is not None
        first_tag, lists = self._pending
        batch = self._batch(reply, first_tag, lists)
        stopped = [q for q, _, _, tag, _ in batch if tag and q not in self.connection._callbacks]
        if stopped:
            log.warning(
                "messages fetched after their consumer stopped: back at the head",
                queues=sorted(set(stopped)),
            )
            self._give_back_batch(reply, first_tag, lists)
            raise Empty()
        failure: Exception | None = None
        for queue, raw, junk, tag, order in batch:
            self._queue_cycle.rotate(queue)
            try:
                self._deliver_one(queue, raw, junk, tag, order)
            except Empty:
                continue  # dead-lettered
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return True

    def _deliver_one(
        self, queue: str, raw: bytes, junk: int, tag: str | None, inflight: str = ""
    ) -> bool:
        if junk:  # taken as bytes only, not in kombu's unacked hash
            self._drop(queue, raw, ValueError("not a JSON object with properties"), tag)
        return self._deliver_fetched(queue, raw, tag, inflight)

    def _read_reply(self, command: str, **options: Any) -> Any:
        connection = self.client.connection
        try:
            return self.client.parse_response(connection, command, **options)
        except NoScriptError:  # first use on this server, or Redis restarted: load it
            self.client.script_load(FETCH)
            return False
        except self.connection_errors:
            connection.disconnect()  # reconnected on the next round, as kombu does
            raise
        except ResponseError:  # e.g. out of memory: nothing was taken; try again later
            log.warning("reliable fetch refused by Redis", exc_info=True)
            self._next_fetch_at = monotonic() + ERROR_BACKOFF
            return False

    def _deliver_fetched(self, queue: str, raw: bytes, tag: str | None, inflight: str = "") -> bool:
        try:
            payload = loads(raw)
            properties = payload["properties"]
            if not isinstance(properties, dict):
                raise TypeError("properties is not an object")
        except (ValueError, TypeError, KeyError) as exc:
            self._drop(queue, raw, exc, tag)
        if tag is not None:
            properties["delivery_tag"] = tag  # producers' tags may repeat; the hash key may not
        # Set here alone (a producer's own value is dropped): the order recorded in flight
        # by the fetch, so the worker does not record it again (worker/shell/hooks.py).
        properties.pop(INFLIGHT_PROPERTY, None)
        if inflight:
            properties[INFLIGHT_PROPERTY] = inflight
        try:
            self.connection._deliver(payload, queue)
        except Exception as exc:
            if tag is not None and tag in self.qos._delivered:
                raise  # the consumer's own failure, once kombu's QoS has it: kombu's way
            self._drop(queue, raw, exc, tag)  # kombu could not even make a Message
        return True

    def _basic_cancel(self, consumer_tag: Any) -> Any:
        """kombu's cancel (run once no read is in progress), then the fetch this channel
        sent and has not read is read now and given back: Celery cancels its consumers
        at the start of a warm shutdown and closes the channel only once running tasks
        are done, seconds later; meanwhile that message would be in no queue and in no
        order's in-flight hash, unseen by the backlog gate."""
        result = super()._basic_cancel(consumer_tag)
        self.give_back_pending()
        return result

    def give_back_pending(self) -> bool:
        """Read the reply of a fetch in flight, if any, and put what it took back at the
        head of its list (a message nobody can take now must not wait unseen in this
        process). True when no fetch is in flight any more."""
        if not self._in_poll:
            return True
        blocking, self._blocking = self._blocking, False
        try:
            # A BLMOVE is followed by the script sent with it, which takes what it moved.
            moved = self._read_reply("BLMOVE") if blocking else None
            if self._pending is None:
                return True
            reply = self._read_reply("EVALSHA")
            if moved and not reply and self._wait is not None:
                # the script failed (NOSCRIPT, an error): the message is in the moving list
                self.client.lmove(
                    keys.fetch_moving(self.consumer_id), self._wait[1], "LEFT", "RIGHT"
                )
                log.info("fetched message given back to the head", queue=self._wait[0])
        except Exception:  # the close or the restore sweep gives it back, as before
            log.warning("could not read a pending fetch to give it back", exc_info=True)
            return False
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu's own reset
        pending, self._pending = self._pending, None
        if reply and pending is not None:
            self._give_back_batch(reply, *pending)
        return True

    def _batch(
        self, reply: list[Any], first_tag: str, lists: list[tuple[str, bool]]
    ) -> list[tuple[str, bytes, int, str | None, str]]:
        """The fetch script's reply as (queue, payload, junk, delivery tag or None for a
        no-ack queue, order recorded in flight), in the order taken."""
        batch = []
        for k in range(len(reply) // 4):
            number, raw, junk, order = reply[4 * k : 4 * k + 4]
            tag = first_tag if k == 0 else f"{first_tag}.{k + 1}"
            if int(number) == 0:  # the moving list: what the BLMOVE moved from the wait list
                assert self._wait is not None
                queue, no_ack = self._wait[0], self._wait[2]
            else:
                queue, no_ack = lists[int(number) - 1]
            batch.append((queue, raw, int(junk), None if no_ack else tag, _text(order)))
        return batch

    def _give_back_batch(
        self,
        reply: list[Any],
        first_tag: str,
        lists: list[tuple[str, bool]],
    ) -> None:
        """Every message of a reply back at the head of its list, the last taken first so
        that they stand in the order they were taken; no-ack ones (popped bare, nothing to
        restore) delivered, junk dead-lettered."""
        for queue, raw, junk, tag, _ in reversed(self._batch(reply, first_tag, lists)):
            try:
                if junk:
                    self._drop(queue, raw, ValueError("not a JSON object with properties"), tag)
                if tag is None:
                    self._deliver_fetched(queue, raw, None)
                    continue
                log.info("fetched message given back to the head", queue=queue)
                self.qos.restore_by_tag(tag, leftmost=False)
            except Empty:
                continue

    def _drop(self, queue: str, raw: bytes, error: Exception, tag: str | None) -> NoReturn:
        """A message no consumer could ever take (not a kombu envelope, a body its encoding
        cannot decode): dead-letter its bytes rather than restore it after every crash,
        which would stop every worker in turn. Never dropped: if even the dead letter
        cannot be written, the message stays taken and comes back like any other."""
        log.error("undeliverable message dead-lettered", queue=queue, error=repr(error))
        letter = self._dead_letter_envelope(queue, raw, error)
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()  # MULTI: a kill between the two cannot repeat the letter
            pipe.lpush(self._q_for_pri(topology.DEAD_LETTER, 0), dumps(letter))
            if tag is not None:
                self.qos._remove_from_indices(tag, pipe)
            pipe.execute()
        raise Empty()

    def _dead_letter_envelope(self, queue: str, raw: bytes, error: Exception) -> dict[str, Any]:
        """A kombu envelope for the dead-letter queue, as `basic_publish` would make it."""
        body = json.dumps(
            dead_letter_body(
                task=None,
                original={**raw_original(raw), "queue": queue},
                error=f"not a message kombu can deliver: {type(error).__name__}: {error}",
                reason="undeliverable",
                now=datetime.now(UTC),
            )
        )
        message: dict[str, Any] = self.prepare_message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            properties={"delivery_mode": 2},
        )
        message["body"], message["properties"]["body_encoding"] = self.encode_body(
            body, self.body_encoding
        )
        message["properties"]["delivery_info"] = {
            "exchange": topology.DEAD_LETTER,
            "routing_key": topology.DEAD_LETTER,
        }
        message["properties"]["delivery_tag"] = str(uuid.uuid4())
        return message

    def _ensure_heartbeat(self) -> None:
        if self._pid != os.getpid():  # a forked child is another consumer
            self._pid, self.consumer_id, self._heartbeat = os.getpid(), _new_consumer_id(), None
            self._wait, self._blocking = None, False
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self)
            self._heartbeat.start()

    def close(self) -> None:
        # Messages delivered and not acked are restored by kombu's close (restore_unacked);
        # anything else this consumer has taken goes back once its alive key has expired.
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        transport = self.connection  # None once kombu has closed this channel
        if transport is not None and transport.client is None:
            # The Connection was dropped (a lost Redis): kombu's restore would build a
            # client from it and raise, stopping the worker. What this channel took comes
            # back through the restore instead, as after a kill -9.
            self.do_restore = False
        super().close()


class CarriedAlive:
    """Another alive key the consumers' beats of this process set too, in the same round
    trip, while `fresh()` says its owner lives: the worker incarnation's
    (`aftersales:alive:<node>#<boot>`, worker/shell/hooks.py Liveness), while the worker's
    event loop ticks. Only where the broker is the state's Redis, where that key lives."""

    def __init__(self, key: str, ttl_ms: int, fresh: Callable[[], bool]) -> None:
        self.key, self.ttl_ms, self.fresh = key, ttl_ms, fresh
        self.set_at = float("-inf")  # monotonic: when a beat last set it (its reply read)

    def set_within(self, seconds: float) -> bool:
        """A beat set the key, and said so, within the last `seconds`."""
        return monotonic() - self.set_at < seconds


carried: CarriedAlive | None = None
"""This process's carried alive key, if any (set by the worker's Liveness step)."""


class Heartbeat(threading.Thread):
    """Keeps a consumer's alive key and gives back what dead consumers had taken."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(name=f"reliable-fetch {channel.consumer_id}", daemon=True)
        self.consumer_id = channel.consumer_id
        # Its own pool: a pool child forked while this thread holds a pool lock must not
        # inherit that lock in the pool kombu cleans up after a fork.
        params = channel._connparams()
        # A beat stuck longer than the alive expiry is worthless: give up and beat again.
        params["socket_timeout"] = params.get("socket_timeout") or ALIVE_TTL_MS / 1000
        pool = redis.ConnectionPool(**params)
        self.client = redis.Redis(connection_pool=pool)
        self.restore = self.client.register_script(RESTORE)
        self.restore_keys = [
            keys.FETCH_CONSUMERS,
            channel.unacked_key,
            channel.unacked_index_key,
            keys.FETCH_RESTORE,
        ]
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.wait(BEAT_PERIOD):
            try:
                self.beat()
            except Exception:  # Redis away: try again next beat; the TTL decides the rest
                log.warning("reliable fetch beat failed", exc_info=True)
        self.client.close()

    def beat(self) -> int:
        """One round trip: this consumer's alive key (and the carried one, if its owner is
        fresh), then the restore sweep."""
        also = carried if carried is not None and carried.fresh() else None
        restored = int(
            self.restore(
                keys=self.restore_keys,
                args=[
                    keys.ALIVE_PREFIX,
                    keys.FETCH_TAKEN_PREFIX,
                    self.consumer_id,
                    RESTORE_GAP,
                    RESTORE_QUIET,
                    keys.FETCH_MOVING_PREFIX,
                    keys.FETCH_WAIT_PREFIX,
                    ALIVE_TTL_MS,
                    *((also.key, also.ttl_ms) if also else ()),
                ],
            )
        )
        if also is not None:
            also.set_at = monotonic()
        if restored:
            log.warning("restored messages of dead consumers", count=restored)
            record.restored(restored)
        return restored


class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    def _pause_brpop(self, channel: Any, fileno: Any) -> None:
        """kombu keeps a fetch reply unread while the channel has no prefetch credit (a
        task finishing frees it). The message in it is then in no queue and no in-flight
        hash, for as long as the running tasks take: give it back to the head instead."""
        if isinstance(channel, Channel) and channel.give_back_pending():
            return
        super()._pause_brpop(channel, fileno)

    def get(self, callback: Any, timeout: float | None = None) -> Any:
        """Without an event loop (drain_events): a channel backing off after an error
        fetches again no later than its time."""
        now = monotonic()
        pending = [ch._next_fetch_at for ch in self._channels if ch._next_fetch_at > now]
        if pending:
            wait = min(pending) - now
            timeout = wait if timeout is None else min(timeout, wait)
        return super().get(callback, timeout)


class Transport(kombu_redis.Transport):
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()  # type: ignore[assignment]  # kombu's, extended

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        """kombu's, with its binding-expiry timer every BINDING_REFRESH_PERIOD after its
        first look (a second after the loop starts, as kombu's), not every second."""
        super().register_with_event_loop(connection, loop)
        cycle: Any = self.cycle  # this module's MultiChannelPoller
        tref = getattr(cycle, "_binding_expiry_tref", None)  # kombu 5.7 on
        if tref is not None:
            tref.cancel()
            loop.call_later(1.0, cycle.maybe_refresh_binding_expiry)
            cycle._binding_expiry_tref = loop.call_repeatedly(
                BINDING_REFRESH_PERIOD, cycle.maybe_refresh_binding_expiry
            )


def fetch_arguments(
    unacked_key: str,
    index_key: str,
    consumer_id: str,
    tag: str,
    lists: list[tuple[str, str, bool]],
    moved: tuple[str, str, bool] | None = None,
    block: str = "",
    count: int = 1,
    inflight: dict[str, Any] | None = None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of fetch.lua for a consumer taking up to `count` messages from `lists`
    (queue, Redis list, no-ack), in that order, the first under delivery tag `tag` (the
    k-th under `tag.k`). `moved`: the (queue, list, no-ack) its wait key names (what a
    BLMOVE may have moved to its moving list); `block`: the list to name in the wait key
    if every list is empty. `inflight`: {"prefix", "suffix", "tasks"}, the in-flight hash
    key around an order id and the inbound task names (transport option `fetch_inflight`:
    the worker sets it when the broker is the state's Redis)."""
    first = moved or lists[0]
    argv: list[Any] = [
        time(),
        tag,
        consumer_id,
        ALIVE_TTL_MS,
        _tail(first[0]),
        "1" if first[2] else "0",
        block,
        count,
        *(
            (inflight["prefix"], inflight["suffix"], "|" + "|".join(inflight["tasks"]) + "|")
            if inflight
            else ("", "", "")
        ),
    ]
    for queue, _, no_ack in lists:
        argv += [_tail(queue), "1" if no_ack else "0"]
    script_keys = [
        unacked_key,
        index_key,
        keys.fetch_taken(consumer_id),
        keys.FETCH_CONSUMERS,
        keys.alive(consumer_id),
        keys.fetch_moving(consumer_id),
        keys.fetch_wait(consumer_id),
        *(key for _, key, _ in lists),
    ]
    return script_keys, argv


def _tail(queue: str) -> str:
    """The end of kombu's unacked entry for a message of `queue`: `,"",<queue>]`."""
    return f',"",{json.dumps(queue)}]'


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _new_consumer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
