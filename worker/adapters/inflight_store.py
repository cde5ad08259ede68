"""Redis store, in-flight messages and queue depth: what a deadline firing's backlog gate
reads (docs/design.md, backlog safety).

The reliable fetch (worker/shell/fetch.lua), or with a separate broker the consumer, marks
an inbound message in flight when a worker takes it; the commit (or the duplicate check)
ends the entry in its own round trip.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.types import parse_timestamp
from worker.adapters.store_base import StoreBase, epoch, from_epoch, text
from worker.service_layer.ports import Backlog


class InflightStore(StoreBase):
    def mark_inflight(
        self, order_id: str, task_id: str, occurred_at: datetime, received_at: datetime
    ) -> None:
        value = f"{epoch(occurred_at)} {epoch(received_at)}"
        self.client.hset(self.keys.inflight(order_id), task_id, value)

    def clear_inflight(self, order_id: str, task_id: str) -> None:
        self.client.hdel(self.keys.inflight(order_id), task_id)

    def inflight(self, order_id: str) -> dict[str, tuple[datetime, datetime]]:
        return inflight_entries(self.client.hgetall(self.keys.inflight(order_id)))

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
        return sum(int(depth) for depth in depths), inflight_entries(inflight)


def inflight_entries(raw: dict[Any, Any]) -> dict[str, tuple[datetime, datetime]]:
    """An order's in-flight hash as read: task id -> (occurred_at, received_at).

    "<occurred epoch> <received epoch>", written by the reliable fetch
    (worker/shell/fetch.lua) or by the worker as Celery receives a message: the one form
    every release reads. Also read: "@<received epoch> <occurred_at as sent>", which the
    fetch of an unreleased build between 1.1 and 1.2 wrote (main for a day, issue 21); an
    occurred_at there that does not parse belongs to a message that is never applied (it
    is dead-lettered): nothing to wait for, so it is left out."""
    entries: dict[str, tuple[datetime, datetime]] = {}
    for task_id, value in raw.items():
        written = text(value)
        if written.startswith("@"):
            received, _, sent = written[1:].partition(" ")
            try:
                occurred_at = parse_timestamp(sent)
            except ValueError:
                continue
            entries[text(task_id)] = (occurred_at, from_epoch(float(received)))
            continue
        occurred, received_epoch = (float(part) for part in written.split())
        entries[text(task_id)] = (from_epoch(occurred), from_epoch(received_epoch))
    return entries
