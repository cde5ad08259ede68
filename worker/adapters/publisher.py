"""kombu publisher: outbound CloudEvents, dead letters and follow-up tasks.

Publishing happens after the commit; a failure here loses nothing, because the entry
stays in the outbox and the relay publishes it again (with the same event id). Events
skip this when the broker is the state's Redis: the commit pushes them itself
(worker/adapters/direct_publish.py, which must keep building what publish_event sends).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from celery import Celery

from schemas import formats
from worker.adapters import topology
from worker.adapters.cloudevents_json import JSON, serializer_for


class KombuPublisher:
    def __init__(self, app: Celery, event_content_type: str = JSON) -> None:
        self.app = app
        self.event_serializer = serializer_for(event_content_type)

    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        formats.version_of(formats.OUTBOX_ENTRY, entry)  # a newer release's: left in place
        kind = entry["kind"]
        if kind == "event":
            self.publish_event(entry["event"])
        elif kind == "dead_letter":
            self.publish_dead_letter(entry["body"])
        elif kind == "task":
            self.app.send_task(
                entry["name"],
                args=entry.get("args", []),
                kwargs=entry.get("kwargs", {}),
                queue=entry.get("queue"),
                task_id=entry_id,
            )
        else:  # pragma: no cover - entries are only written by this package
            raise ValueError(f"unknown outbox entry kind {kind!r}")

    def publish_many(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Publish many outbox entries with one producer, their pushes in one pipeline
        (kombu's publish batch): a batch of firings. Raises if any may not have gone out;
        the caller then leaves them all to the outbox relay (same ids: no new outcome)."""
        with (
            self.app.producer_or_acquire() as producer,
            _batch(producer),
            _bindings_read_once(producer),
        ):
            declare = True  # the exchange once per batch: kombu's check costs per publish
            for entry_id, entry in entries:
                formats.version_of(formats.OUTBOX_ENTRY, entry)
                if entry["kind"] == "event":
                    self._publish_event(producer, entry["event"], declare)
                    declare = False
                else:
                    self.publish(entry_id, entry)

    def publish_event(self, event: dict[str, Any]) -> None:
        # One event goes to every queue bound to the topic exchange (notifications and, for
        # refunds and cancellations, refunds): batched, those pushes are one round trip.
        with self.app.producer_or_acquire() as producer, _batch(producer):
            self._publish_event(producer, event)

    def _publish_event(self, producer: Any, event: dict[str, Any], declare: bool = True) -> None:
        producer.publish(
            event,
            exchange=topology.events_exchange,
            routing_key=event["type"],
            serializer=self.event_serializer,
            delivery_mode=2,
            message_id=event["id"],
            headers={"ce_id": event["id"], "ce_type": event["type"]},
            declare=[topology.events_exchange] if declare else [],
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
        )

    def publish_dead_letter(self, body: dict[str, Any]) -> None:
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                body,
                exchange=topology.dead_letter_exchange,
                routing_key=topology.DEAD_LETTER,
                serializer="json",
                delivery_mode=2,
                declare=[topology.dead_letter_queue],
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
            )


def _batch(producer: Any) -> AbstractContextManager[Any]:
    """kombu >= 5.7 sends a publish's pushes to several queues in one pipeline; a failed
    flush raises, and the entry stays in the outbox for the relay, like any failed publish."""
    batch = getattr(producer, "batch", None)
    return batch() if batch is not None else nullcontext()


@contextmanager
def _bindings_read_once(producer: Any) -> Iterator[None]:
    """kombu's Redis transport reads an exchange's bindings (a round trip) on every publish;
    within one batch they are read once, on its first publish: a queue bound while the
    batch is being published gets the next batch's events, as if bound just after it."""
    channel = producer.channel
    read = getattr(channel, "get_table", None)
    if read is None or "get_table" in vars(channel):  # not the virtual transport's channel
        yield
        return
    tables: dict[str, Any] = {}

    def read_once(exchange: str) -> Any:
        if exchange not in tables:
            tables[exchange] = read(exchange)
        return tables[exchange]

    channel.get_table = read_once
    try:
        yield
    finally:
        del channel.get_table  # the class's own method again
