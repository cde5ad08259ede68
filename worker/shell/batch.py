"""Inbound messages taken together are decided and committed together.

Celery runs one task per message: a Request built in the consumer, a trip over the pool's
pipe, the tracer and its signals, an ack, each its own Redis round trip. On the Redis
broker with the reliable fetch (worker/shell/transport.py), the consumer screens each
inbound message as before (worker/shell/consumer.py) and then, instead of Celery's
strategy, puts it in a buffer; at the next turn of the event loop, or when the buffer
holds `AFTERSALES_INBOUND_BATCH` messages, the buffer goes to a pool process as one call
(tasks/inbound.py, handle_batch: the begins of all its messages in one round trip, their
commits in another), and the messages are acked together when it returns. A message
taken alone (a quiet hour) is a batch of one, sent at once.

Nothing is acked before its commit (late acks, as for a task), and every message keeps
its in-flight entry until then: a worker killed with a batch leaves its messages taken,
and the restore gives them back (docs/design.md). What a batch cannot settle goes
Celery's way, one task per message, with its retries and dead letters: a message the
pool process handed back (an outage, an error it did not foresee, OpenTelemetry traces),
every message of a batch whose pool process died, a message whose body is not Celery's
protocol 2, and one the fetch did not record in flight. Those a batch committed already
are duplicates there: the seen ids answer them without a second effect. A message whose
task id was revoked (`celery control revoke`, Flower) goes Celery's way too, which
discards it, when it is taken or while it waits in the buffer; once in a batch it runs,
as a task already running would.

Each message is still its own task to a monitor: with task events on (Flower asks), a
"task-received" event as it joins a batch and "task-succeeded" with its result when it is
acked; the worker's log has Celery's "received" and "succeeded" lines for it, the
metrics count it (docs/observability.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from celery.app.trace import LOG_RECEIVED
from celery.worker import state as worker_state
from kombu.message import Message

from worker.logging import get_logger, redact
from worker.service_layer.backlog import order_of
from worker.shell.transport import INFLIGHT_PROPERTY

log = get_logger("aftersales.batch")

RUNNER = "tasks.inbound:handle_batch"
"""What a pool process runs for a batch, named (tasks/ imports this room, not the reverse)."""

PREFETCH_BATCHES = 2
"""Batches a pool process may have taken: the one it runs and the next."""

LINKS = ("callbacks", "errbacks", "chain", "chord")
"""Protocol 2's links to other tasks: a message that has any goes Celery's way, which
runs them."""

_strategy_log = logging.getLogger("celery.worker.strategy")
"""Celery's logger of a task taken: each message has Celery's line there (LOG_RECEIVED)."""


class InboundBatches:
    """The consumer's side of the batch path (see the module's text). One per consumer;
    all of it runs on the consumer's event loop."""

    def __init__(
        self,
        consumer: Any,
        one_by_one: Callable[[Message], None],
        size: int,
        run_batch: Callable[..., Any],
        received: Callable[[], None],
    ) -> None:
        self.consumer = consumer
        self.one_by_one = one_by_one  # Celery's way for one message, behind the net
        self.size = size
        self.run_batch = run_batch  # what the pool process runs (tasks.inbound.handle_batch)
        self.received = received  # the watchdog and the metrics are told of each message
        self.buffer: list[tuple[Message, tuple[Any, ...], str | None]] = []  # and its order
        self.running: dict[str, int] = {}  # orders with messages in a batch: how many
        self.in_flight = 0  # messages handed to the pool, not yet ended
        self._flush_soon = False
        # Room to take two batches a pool process ahead: one running, one ready to go.
        # Messages in a batch count against the prefetch limit as they wait and run, and
        # Celery's (four a process) would cut batches to a few messages each.
        processes = int(getattr(consumer.pool, "num_processes", 1) or 1)
        self.processes = processes
        self.most_batches = PREFETCH_BATCHES * processes
        self.batches = 0  # handed to the pool, not yet ended
        wanted = self.most_batches * size
        if consumer.qos is not None and consumer.qos.value < wanted:
            consumer.qos.increment_eventually(wanted - consumer.qos.value)

    def busy(self) -> bool:
        """Messages buffered or in a batch: the consumer is not idle (the watchdog)."""
        return bool(self.buffer or self.in_flight)

    def offer(self, message: Message) -> bool:
        """Take an inbound message into the next batch; False: it goes Celery's way (a
        revoked one too: Celery discards it, as it would any revoked task)."""
        item = _item(message)
        if item is None or _revoked(message):
            return False
        self.received()
        headers = message.headers
        _strategy_log.info(LOG_RECEIVED, {"id": item[1], "name": item[0]})
        self._event(
            "task-received",
            uuid=item[1],
            name=item[0],
            args=redact(str(headers.get("argsrepr") or "")),
            kwargs=redact(str(headers.get("kwargsrepr") or "")),
            root_id=headers.get("root_id"),
            parent_id=headers.get("parent_id"),
            retries=headers.get("retries") or 0,
            eta=None,
            expires=None,
        )
        self.buffer.append((message, item, order_of(item[2])))
        if len(self.buffer) >= self.size:
            self.flush()
        elif not self._flush_soon:
            self._flush_soon = True
            self.consumer.hub.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Hand the buffer to the pool: whatever may go while a pool process has no batch,
        else only a full batch, and no more than two batches a process; what is left
        waits until a batch ends (messages taken meanwhile join it instead of making
        batches of one or two).

        A message waits while its order has a message in a batch that has not ended:
        one worker never decides two messages of one order at once, and decides them in
        the order it took them (within a batch, in turns). Two workers still may, as two
        tasks may: the rules take facts in any order (parking) and the version-checked
        commit makes the loser of a race decide again (docs/design.md)."""
        self._flush_soon = False
        if worker_state.revoked or worker_state.revoked_stamps:
            self._revoked_go_alone()
        if not self.buffer or self.batches >= self.most_batches:
            return
        batch: list[tuple[Message, tuple[Any, ...], str | None]] = []
        kept: list[tuple[Message, tuple[Any, ...], str | None]] = []
        for entry in self.buffer:
            order = entry[2]
            if len(batch) < self.size and (order is None or order not in self.running):
                batch.append(entry)
            else:
                kept.append(entry)
        if not batch or (self.batches >= self.processes and len(batch) < self.size):
            return
        self.buffer = kept
        for _, _, order in batch:
            if order is not None:
                self.running[order] = self.running.get(order, 0) + 1
        self.batches += 1
        self.in_flight += len(batch)
        try:
            self.consumer.pool.apply_async(
                self.run_batch,
                args=([item for _, item, _ in batch],),
                callback=partial(self._done, batch),
                error_callback=partial(self._failed, batch),
            )
        except Exception:
            log.exception("a batch could not go to the pool; its messages go one at a time")
            self._ended(batch)
            self._each([message for message, _, _ in batch])

    def _revoked_go_alone(self) -> None:
        """Messages revoked while they waited in the buffer go Celery's way, which discards
        them (`revoke` names a task id, or stamps; the worker keeps them in a set)."""
        kept: list[tuple[Message, tuple[Any, ...], str | None]] = []
        revoked: list[tuple[Message, tuple[Any, ...], str | None]] = []
        for entry in self.buffer:
            (revoked if _revoked(entry[0]) else kept).append(entry)
        if revoked:
            self.buffer = kept
            self._each([message for message, _, _ in revoked])

    def _done(self, batch: list[tuple[Message, Any, str | None]], results: Any) -> None:
        messages = [message for message, _, _ in batch]
        try:
            self._ended(batch)
            if not isinstance(results, list) or len(results) != len(messages):
                log.error("a batch answered %r; its messages go one at a time", type(results))
                self._each(messages)
                return
            done = [(m, r) for m, r in zip(messages, results, strict=True) if r is not None]
            _ack_all([message for message, _ in done], self.consumer)
            for message, result in done:
                self._event("task-succeeded", uuid=message.headers.get("id"), result=repr(result))
            self._each([m for m, r in zip(messages, results, strict=True) if r is None])
        except Exception:  # the pool's callback must not raise: the messages stay taken
            log.exception("ending a batch failed; its messages come back with the restore")

    def _failed(self, batch: list[tuple[Message, Any, str | None]], exc_info: Any) -> None:
        """The pool process died under the batch (or the call failed): each message goes
        Celery's way; those committed already are duplicates there."""
        messages = [message for message, _, _ in batch]
        try:
            self._ended(batch)
            error = getattr(exc_info, "exception", exc_info)
            log.warning(
                "batch lost; its messages go one at a time",
                messages=len(messages),
                error=f"{type(error).__name__}: {error}",
            )
            self._each(messages)
        except Exception:
            log.exception("requeueing a lost batch failed; its messages come back with the restore")

    def _ended(self, batch: list[tuple[Message, Any, str | None]]) -> None:
        self.batches -= 1
        self.in_flight -= len(batch)
        for _, _, order in batch:
            if order is not None:
                left = self.running.pop(order, 1) - 1
                if left:
                    self.running[order] = left
        if self.buffer and not self._flush_soon:  # what waited for a free process
            self._flush_soon = True
            self.consumer.hub.call_soon(self.flush)

    def _each(self, messages: list[Message]) -> None:
        for message in messages:
            self.one_by_one(message)

    def _event(self, kind: str, **fields: Any) -> None:
        dispatcher = getattr(self.consumer, "event_dispatcher", None)
        if dispatcher is not None and dispatcher.enabled:
            dispatcher.send(kind, **fields)


def _item(message: Message) -> tuple[Any, ...] | None:
    """What the pool process gets of a message (tasks.inbound.BatchItem), or None for one
    that goes Celery's way: not recorded in flight by the fetch, or not protocol 2."""
    properties = message.properties or {}
    headers = message.headers or {}
    if not properties.get(INFLIGHT_PROPERTY) or not isinstance(message.delivery_info, dict):
        return None  # Celery's way: a delivery_info of another type is dead-lettered there
    task_id, task_name = headers.get("id"), headers.get("task")
    if not isinstance(task_id, str) or not isinstance(task_name, str):
        return None
    payload = message.decode()  # decoded already by the screen: cached
    if not (
        isinstance(payload, list | tuple)
        and len(payload) == 3
        and isinstance(payload[0], list | tuple)
        and isinstance(payload[1], dict)
        and isinstance(payload[2], dict)
        and not any(payload[2].get(link) for link in LINKS)
    ):
        return None
    trace = {
        name: headers[name]
        for name in ("traceparent", "tracestate")
        if isinstance(headers.get(name), str)
    }
    return (task_name, task_id, list(payload[0]), dict(payload[1]), trace)


def _revoked(message: Message) -> bool:
    """Celery would discard this message as revoked: its task id is in the worker's revoked
    set, or it carries stamps while some are revoked (Celery's own check then decides)."""
    headers = message.headers or {}
    return headers.get("id") in worker_state.revoked or bool(
        worker_state.revoked_stamps and headers.get("stamped_headers")
    )


def _ack_all(messages: list[Message], consumer: Any) -> None:
    """Ack messages together: one round trip where the transport can (the reliable
    fetch's QoS.ack_many), else one by one."""
    if not messages:
        return
    qos = messages[0].channel.qos
    ack_many = getattr(qos, "ack_many", None)
    same_channel = all(message.channel is messages[0].channel for message in messages)
    if ack_many is None or not same_channel:
        for message in messages:
            message.ack_log_error(log, consumer.connection_errors)
        return
    try:
        ack_many([message.delivery_tag for message in messages])
    except consumer.connection_errors:
        log.warning("acking a batch failed; its messages come back with the restore", exc_info=True)
        return
    for message in messages:
        message._state = "ACK"
