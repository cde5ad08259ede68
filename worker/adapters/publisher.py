"""kombu publisher: outbound CloudEvents, dead letters and follow-up tasks.

Publishing happens after the commit; a failure here loses nothing, because the entry
stays in the outbox and the relay publishes it again (with the same event id). Events
skip this when the broker is the state's Redis: the commit pushes them itself
(worker/adapters/direct_publish.py, which must keep building what publish_event sends).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from celery import Celery

from worker import topology


class KombuPublisher:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
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

    def publish_event(self, event: dict[str, Any]) -> None:
        # One event goes to every queue bound to the topic exchange (notifications and, for
        # refunds and cancellations, refunds): batched, those pushes are one round trip.
        with self.app.producer_or_acquire() as producer, _batch(producer):
            producer.publish(
                event,
                exchange=topology.events_exchange,
                routing_key=event["type"],
                serializer="json",
                delivery_mode=2,
                message_id=event["id"],
                headers={"ce_id": event["id"], "ce_type": event["type"]},
                declare=[topology.events_exchange],
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
