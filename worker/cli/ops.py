"""Operator views behind the CLI: one order's timeline, pending deadlines, lateness, dead
letters and their replay. Read-mostly; replay is the only write."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from statistics import quantiles
from typing import Any

import redis
from celery import Celery

from schemas import formats
from schemas.inbound import INBOUND_TASKS
from schemas.policy import MarketplacePolicy, PolicySet
from schemas.types import format_timestamp
from worker.adapters import topology
from worker.adapters.redis_store import RedisStore
from worker.adapters.state_codec import policy_hash

TERMS = (
    "free_cancel_window",
    "cancel_response_window",
    "unpaid_cancel_after",
    "return_window",
    "return_response_window",
    "return_response_calendar",
)
"""The windows `aftersales order` shows of the terms an order is under."""


def order_terms(
    policy: MarketplacePolicy | None, marketplace: str | None, current: PolicySet | None
) -> dict[str, Any] | None:
    """The terms an order is under: the policy snapshot taken at `order.placed` (by its
    content hash, as stored), whether the workers' policy file gives a new order of that
    marketplace the same terms today, and its main windows."""
    if policy is None:
        return None
    digest = policy_hash(policy)
    today = current.for_marketplace(marketplace) if current and marketplace else None
    return {
        "policy": digest,
        "same_as_current": None if today is None else policy_hash(today) == digest,
        "windows": {name: str(getattr(policy, name)) for name in TERMS if hasattr(policy, name)},
    }


def order_view(
    store: RedisStore, order_id: str, current: PolicySet | None = None
) -> dict[str, Any] | None:
    loaded = store.load(order_id)
    if loaded.state is None:
        return None
    state = loaded.state
    marketplace = state.order.marketplace if state.order is not None else None
    return {
        "order_id": order_id,
        "version": loaded.version,
        "terms": order_terms(state.policy, marketplace, current),
        "timeline": store.timeline(order_id),
        "deadlines": [
            {"id": d.id, "kind": d.kind, "ref": d.ref, "due_at": format_timestamp(d.due_at)}
            for d in sorted(state.deadlines.values(), key=lambda d: d.due_at)
        ],
        "parked": [
            {
                "type": p.message.get("type"),
                "message_id": p.message.get("message_id"),
                "waiting_for": p.waiting_for,
            }
            for p in state.parked
        ],
        "in_flight": sorted(store.inflight(order_id)),
        "state": state.model_dump(mode="json"),
    }


def next_deadlines(store: RedisStore, count: int) -> list[dict[str, Any]]:
    """The next `count` deadlines of all orders, due time read from each order's state."""
    rows = []
    for order_id, deadline_id, due, where in store.next_deadlines(count):
        if due is None:  # armed: its score is the re-check time; the state has the due
            loaded = store.load(order_id)
            deadline = loaded.state.deadlines.get(deadline_id) if loaded.state else None
            due = deadline.due_at if deadline else None
        rows.append(
            {
                "order_id": order_id,
                "deadline": deadline_id,
                "due_at": format_timestamp(due) if due else None,
                "where": where,
            }
        )
    rows.sort(key=lambda row: row["due_at"] or "")
    return rows[:count]


def lateness(store: RedisStore) -> dict[str, Any]:
    """Firing lateness over the most recent firings, in milliseconds: what the worker
    answers for (from the later of the due time and when it learned of the deadline), and
    apart from it the figure since the due time with the count of deadlines that were
    already past due when their message arrived (backdated)."""
    records = store.lateness_records()
    answerable = _summary([record.ms for record in records])
    backdated = [record.since_due_ms for record in records if record.since_due_ms != record.ms]
    return {**answerable, "backdated": {**_summary(backdated), "measured": "since_due"}}


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {"count": 0}
    cuts = quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"count": len(values), "p50_ms": cuts[49], "p99_ms": cuts[98], "max_ms": values[-1]}


def _decode_envelope(raw: bytes | str) -> dict[str, Any]:
    envelope = json.loads(raw)
    body = envelope.get("body", "")
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return dict(json.loads(body))


def dead_letters(client: redis.Redis, limit: int) -> list[dict[str, Any]]:
    """Dead letters, oldest first, without taking them off the queue (Redis broker)."""
    raw = client.lrange(topology.DEAD_LETTER, -limit, -1)
    return [_decode_envelope(item) for item in reversed(raw)]


def replay(app: Celery, limit: int, now: datetime) -> list[dict[str, Any]]:
    """Send dead-lettered messages again to their task, oldest first; returns what was sent.

    Only letters that carry a task name and a decoded original message can be replayed;
    others are put back at the end of the dead-letter queue untouched, and so are letters
    in a format newer than this release reads (schemas/formats.py).
    """
    sent = []
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue(topology.dead_letter_queue)
        try:
            for _ in range(limit):
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                letter = _letter(message)
                task, original = letter.get("task"), letter.get("original")
                if _newer(letter):  # written by a newer release: its replay reads it
                    queue.put(letter)
                elif task in INBOUND_TASKS and isinstance(original, dict):
                    app.send_task(task, args=[original], queue=topology.INBOUND)
                    sent.append({"task": task, "message_id": original.get("message_id")})
                else:
                    queue.put(dict(letter, replay_skipped_at=format_timestamp(now)))
                message.ack()
        finally:
            queue.close()
    return sent


def _newer(letter: dict[str, Any]) -> bool:
    try:
        formats.version_of(formats.DEAD_LETTER, letter)
    except formats.NewerFormat:
        return True
    return False


def _letter(message: Any) -> dict[str, Any]:
    """A dead letter as the worker writes it, or made from a task message RabbitMQ
    dead-lettered itself (its inbound policy: delivery limit, rejection): the task is in
    its headers and the message is its one argument (body `[args, kwargs, embed]`)."""
    payload = message.payload
    if isinstance(payload, dict):
        return payload
    args = payload[0] if isinstance(payload, list) and payload else None
    original = args[0] if isinstance(args, list) and len(args) == 1 else payload
    task = (message.headers or {}).get("task")
    return {"task": task, "reason": "dead_lettered_by_broker", "original": original}
