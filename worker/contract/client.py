"""A typed client of the wire contract, for Python producers and downstream consumers.

    from worker.contract.client import EventConsumer, Producer, build
    from schemas.inbound import OrderPaid

    with Producer("redis://127.0.0.1:6379/0") as producer:
        producer.send(build(OrderPaid, order_id="ord-42"))
    with EventConsumer("redis://127.0.0.1:6379/0", "billing", ["refund.#"]) as events:
        for event in events.iterate(idle_timeout=5):
            print(event.type, event.subject, event.data)

Everything is derived from the pydantic models in `schemas/`: a new message type or
event type is usable here as soon as it is in the models.
"""

from __future__ import annotations

import functools
import time
import typing
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from celery import Celery
from kombu.connection import Connection
from kombu.entity import Queue, binding
from pydantic import BaseModel

from schemas.events import EVENT_DATA, CloudEvent, Data
from schemas.inbound import ANY_MESSAGE, TASK_MESSAGES, InboundMessage, Message, parse_message
from worker.adapters import amqp, topology
from worker.adapters import cloudevents_json as _structured_mode  # noqa: F401  # registers it
from worker.logging import get_logger

M = TypeVar("M", bound=Message)

SEEN_IDS = 100_000
"""Event ids remembered for de-duplication: duplicates come from an outbox re-publish
seconds after the first copy, so this covers far more than the window they arrive in."""

log = get_logger("aftersales.client")


@functools.cache
def message_models() -> dict[str, type[Message]]:
    """Each inbound message type (`order.placed`, ...) and its model, from the union."""
    models: dict[str, type[Message]] = {}
    for model in typing.get_args(typing.get_args(InboundMessage)[0]):
        (message_type,) = typing.get_args(model.model_fields["type"].annotation)
        models[message_type] = model
    return models


@functools.cache
def task_for_type() -> dict[str, str]:
    """Each inbound message type and the task that accepts it (from each task's union)."""
    routes = {}
    for task_name, adapter in TASK_MESSAGES.items():
        for message_type in adapter.json_schema()["discriminator"]["mapping"]:
            routes[message_type] = task_name
    return routes


def build(model: type[M], /, **fields: Any) -> M:
    """A validated message of `model`; `type` is the model's own, `message_id` a fresh
    uuid4 and `occurred_at` now unless given. Raises pydantic.ValidationError."""
    (message_type,) = typing.get_args(model.model_fields["type"].annotation)
    fields.setdefault("message_id", str(uuid.uuid4()))
    fields.setdefault("occurred_at", datetime.now(UTC))
    return model.model_validate({**fields, "type": message_type})


def build_type(message_type: str, /, **fields: Any) -> Message:
    """`build` by type name (`"order.placed"`), for producers that route by a string."""
    return build(message_models()[message_type], **fields)


def validate(message: Message | Mapping[str, Any], now: datetime | None = None) -> Message:
    """The message as the worker will read it, or pydantic.ValidationError: its type's
    model, the rules of its task, and `occurred_at` not more than 5 minutes ahead."""
    body = message.model_dump(mode="json") if isinstance(message, BaseModel) else dict(message)
    parsed = ANY_MESSAGE.validate_python(body)
    checked: Message = parse_message(
        task_for_type()[parsed.type], body, now=now or datetime.now(UTC)
    )
    return checked


class Producer:
    """Sends inbound messages to their task on `aftersales.inbound` (JSON, protocol 2)."""

    def __init__(self, url: str) -> None:
        self._celery = Celery("aftersales-producer", broker=url, set_as_current=False)
        self._celery.conf.update(
            task_serializer="json",
            accept_content=["json"],
            # RabbitMQ: the inbound queue is a quorum queue, and is declared as one.
            task_create_missing_queue_type="quorum" if amqp.is_amqp(url) else "classic",
        )

    def send(
        self,
        message: Message | Mapping[str, Any],
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> str:
        """Validate, then send; returns the Celery task id. Nothing is sent if invalid.

        `traceparent` (and `tracestate`): a W3C trace context, sent as task headers; every
        event the message causes carries it (docs/observability.md)."""
        checked = validate(message)
        headers = {"traceparent": traceparent, "tracestate": tracestate}
        result = self._celery.send_task(
            task_for_type()[checked.type],
            args=[checked.model_dump(mode="json")],
            queue=topology.INBOUND,
            serializer="json",
            headers={name: value for name, value in headers.items() if value is not None},
        )
        return str(result.id)

    def close(self) -> None:
        self._celery.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class Event:
    """One received CloudEvent: its envelope and its `data` parsed into the type's model."""

    envelope: CloudEvent
    data: Data

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def subject(self) -> str:
        return self.envelope.subject

    @property
    def time(self) -> datetime:
        return self.envelope.time


def parse_event(body: str | bytes | Mapping[str, Any]) -> Event:
    """A CloudEvent body (JSON text or dict) as an `Event`; raises pydantic.ValidationError."""
    if isinstance(body, Mapping):
        envelope = CloudEvent.model_validate(dict(body))
    else:
        envelope = CloudEvent.model_validate_json(body)
    return Event(envelope, EVENT_DATA[envelope.type].model_validate(envelope.data))


class EventConsumer:
    """Iterates the events of a queue bound to `aftersales.events` with `routing_keys`.

    The queue is declared (durable unless `durable=False`) before the first event is
    read, so events published from then on wait in it. Each message is acknowledged when
    the loop asks for the next one, so an event being handled when the process dies is
    delivered again; an `id` already seen by this consumer is dropped (the worker's
    outbox may publish an outcome twice, always under the same id).
    """

    def __init__(
        self,
        url: str,
        queue: str,
        routing_keys: Sequence[str] = ("#",),
        *,
        durable: bool = True,
        auto_delete: bool = False,
    ) -> None:
        self._connection = Connection(url)
        bindings = [binding(topology.events_exchange, routing_key=key) for key in routing_keys]
        declared = Queue(queue, bindings=bindings, durable=durable, auto_delete=auto_delete)
        self._queue = self._connection.SimpleQueue(declared)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def iterate(self, idle_timeout: float | None = None) -> Iterator[Event]:
        """Events as they arrive; stops after `idle_timeout` s without one (never if None)."""
        while True:
            try:
                message = self._queue.get(block=True, timeout=idle_timeout)
            except self._queue.Empty:
                return
            try:
                event = parse_event(message.body)
            except ValueError as exc:  # not ours, or not this version: skipped, logged
                log.warning("event skipped", error=str(exc)[:500])
                message.ack()
                continue
            if self._remember(event.id):
                yield event
            else:
                self.duplicates += 1
            message.ack()

    def next_event(self, timeout: float) -> Event | None:
        """The next new event within `timeout` s, or None; acknowledged before it is
        returned (at most once: for tools and tests, where `iterate` is for services)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self._queue.get(block=True, timeout=left)
            except self._queue.Empty:
                return None
            message.ack()
            try:
                event = parse_event(message.body)
            except ValueError as exc:
                log.warning("event skipped", error=str(exc)[:500])
                continue
            if self._remember(event.id):
                return event
            self.duplicates += 1
        return None

    def _remember(self, event_id: str) -> bool:
        """True the first time an id is seen."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    def close(self) -> None:
        self._queue.close()
        self._connection.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = [
    "Event",
    "EventConsumer",
    "Producer",
    "build",
    "build_type",
    "message_models",
    "parse_event",
    "task_for_type",
    "validate",
]
