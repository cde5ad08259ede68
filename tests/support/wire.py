"""Bare wire clients: a producer and a downstream consumer that know only the contract.

They import `celery` and `kombu` and nothing from this project, like a producer in
another language would (docs/asyncapi.yaml).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery import Celery
from kombu import Connection, Exchange, Queue

INBOUND = "aftersales.inbound"
EVENTS = "aftersales.events"
DEAD_LETTER = "aftersales.dead_letter"
PATIENCE = 30.0
"""Default wait (s) for an event or dead letter: a met wait returns at once, so a long bound
costs nothing when all is well and keeps a loaded 2-core CI machine from failing a test."""

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
# On RabbitMQ the inbound queue is a quorum queue; a producer that declares it says so
# (docs/operations.md#rabbitmq), or RabbitMQ refuses the declare.
QUORUM = {"x-queue-type": "quorum"}

Match = str | Iterable[str] | Callable[[dict[str, Any]], bool]
"""An event type, several types, or a predicate over the parsed CloudEvent."""


def task_headers(task_name: str, task_id: str | None = None) -> dict[str, Any]:
    """Minimal Celery task protocol 2 headers, as a non-Python producer would send them."""
    task_id = task_id or str(uuid.uuid4())
    return {
        "lang": "py",
        "task": task_name,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": None,
        "kwargsrepr": None,
        "origin": "tests",
    }


def protocol2_body(message: Any) -> bytes:
    """The JSON body of a protocol 2 task with `message` as its one positional argument."""
    return json.dumps(
        [[message], {}, {"callbacks": None, "errbacks": None, "chain": None}]
    ).encode()


class WireClient:
    """A producer: sends tasks to `aftersales.inbound` through a bare `Celery(broker=url)`."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.celery = Celery("aftersales-test-producer", broker=broker_url, set_as_current=False)
        self.amqp = broker_url.startswith(AMQP_SCHEMES)
        self.celery.conf.update(
            task_serializer="json",
            accept_content=["json"],
            task_create_missing_queue_type="quorum" if self.amqp else "classic",
        )
        self._connection = Connection(broker_url)

    def send(self, task_name: str, message: Mapping[str, Any], **options: Any) -> str:
        """Send `message` as the one positional argument of `task_name`; returns the task id.

        `options` go to `send_task` (e.g. `task_id=`, `countdown=`).
        """
        result = self.celery.send_task(
            task_name, args=[dict(message)], queue=INBOUND, serializer="json", **options
        )
        return str(result.id)

    def send_raw(
        self,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, Any] | None = None,
        content_encoding: str = "utf-8",
    ) -> None:
        """Publish arbitrary bytes to `aftersales.inbound` (direct exchange and routing key of
        that name, Celery's default routing for a named queue).

        For a message the worker sees as a task, pass `headers=task_headers(name)` and a
        body from `protocol2_body(...)`, or any broken variant of them; for pickle use
        `content_type="application/x-python-serialize", content_encoding="binary"`.
        """
        queue = Queue(
            INBOUND,
            Exchange(INBOUND, type="direct"),
            routing_key=INBOUND,
            queue_arguments=QUORUM if self.amqp else None,
        )
        with self._connection.Producer() as producer:
            producer.publish(
                body,
                exchange=queue.exchange,
                routing_key=INBOUND,
                content_type=content_type,
                content_encoding=content_encoding,
                headers=dict(headers or {}),
                declare=[queue],
                delivery_mode=2,
            )

    def close(self) -> None:
        self._connection.release()
        self.celery.close()


class EventListener:
    """A downstream consumer bound to `aftersales.events` with `#` before the test sends.

    Its queue is `<queue_prefix>.<random>` (a Redis ACL may allow only some queue names).

    Everything received is kept in `.events` (parsed CloudEvent dicts, arrival order).
    `wait_for` and `collect` pull from the queue; `wait_for` looks at the whole history,
    so an event that arrived while waiting for another is not missed.
    """

    def __init__(self, broker_url: str, queue_prefix: str = "test.events") -> None:
        self.connection = Connection(broker_url)
        self.exchange = Exchange(EVENTS, type="topic", durable=True)
        self.queue = Queue(
            f"{queue_prefix}.{uuid.uuid4().hex[:12]}",
            self.exchange,
            routing_key="#",
            durable=False,
            auto_delete=True,
        )
        self._bound = self.queue(self.connection.default_channel)
        self._bound.declare()
        self.events: list[dict[str, Any]] = []
        dead_letter = Queue(
            DEAD_LETTER, Exchange(DEAD_LETTER, type="direct", durable=True), routing_key=DEAD_LETTER
        )
        self._dead_letter_queue = dead_letter(self.connection.default_channel)
        self._dead_letter_queue.declare()
        self.letters: list[dict[str, Any]] = []

    def _drain(self) -> int:
        received = 0
        while (message := self._bound.get(no_ack=True)) is not None:
            self.events.append(json.loads(message.body))
            received += 1
        return received

    def wait_for(
        self, match: Match, timeout: float = PATIENCE, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` events received so far match; return the matching
        ones (all of them, in arrival order). AssertionError listing what came otherwise."""
        predicate = _predicate(match)
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            found = [event for event in self.events if predicate(event)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} event(s) matching {_describe(match)} within {timeout}s, "
                    f"got {len(found)}; all events: {self.types()}"
                )
            time.sleep(0.05)

    def collect(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Everything that arrives during the next `timeout` seconds (not the history)."""
        start = len(self.events)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._drain():
                time.sleep(0.05)
        self._drain()
        return self.events[start:]

    def assert_none(self, match: Match, within: float = 2.0) -> None:
        """Fail if an event matching `match` has arrived, or arrives within `within` s."""
        self.collect(within)
        predicate = _predicate(match)
        unexpected = [event for event in self.events if predicate(event)]
        assert not unexpected, f"unexpected event(s) {_describe(match)}: {unexpected}"

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Events of `event_type` received so far (call after `wait_for`/`collect`)."""
        self._drain()
        return [event for event in self.events if event["type"] == event_type]

    def types(self) -> list[str]:
        return [event.get("type", "?") for event in self.events]

    def dead_letters(
        self,
        timeout: float = PATIENCE,
        count: int = 1,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` dead letters (JSON bodies taken from
        `aftersales.dead_letter`) satisfy `match` (default: any); return the matching ones.

        Like `wait_for`, this looks at every letter taken so far (kept in `.letters`).
        """
        predicate = match or (lambda _letter: True)
        deadline = time.monotonic() + timeout
        while True:
            while (message := self._dead_letter_queue.get(no_ack=True)) is not None:
                self.letters.append(json.loads(message.body))
            found = [letter for letter in self.letters if predicate(letter)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} matching dead letter(s) within {timeout}s, "
                    f"got {len(found)}; all dead letters: {self.letters}"
                )
            time.sleep(0.05)

    def close(self) -> None:
        # A flushed or stopped Redis must not fail the teardown.
        with contextlib.suppress(Exception):
            self._bound.delete()
        self.connection.release()


def _predicate(match: Match) -> Callable[[dict[str, Any]], bool]:
    if isinstance(match, str):
        return lambda event: event.get("type") == match
    if callable(match):
        return match
    types = frozenset(match)
    return lambda event: event.get("type") in types


def _describe(match: Match) -> str:
    if isinstance(match, str):
        return repr(match)
    if callable(match):
        return getattr(match, "__name__", repr(match))
    return repr(sorted(match))
