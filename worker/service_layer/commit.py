"""From a decision to the one atomic commit that writes it (ports.Commit): pure.

What changed in the order's deadlines, the outbox entries (events, dead letters, label
tasks) with their stable ids, the timeline line and the keys' expiry. No store, no
clock: the service passes the order as loaded, the decision and the time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from schemas import formats
from schemas.channels import LABEL_TASK
from schemas.dead_letters import dead_letter_body
from schemas.events import event_body
from schemas.types import format_timestamp
from worker.rules.retention import DEFAULT_TOMBSTONE_RETENTION, expires_in, tombstone_after
from worker.rules.state import DeadlineFired, Decision, OrderState, field_of
from worker.service_layer.ports import Commit, Lateness

DEAD_LETTER_NAMESPACE = uuid.UUID("0b8f2f7e-31a4-5bb6-9d3a-6d6f3c1e5a20")
"""Namespace of the uuid5 ids of dead-letter and label-task outbox entries: fixed forever."""

Entry = tuple[str, dict[str, Any]]
"""One outbox entry: (entry id, entry)."""


def commit_for(
    version: int,
    old: OrderState,
    decision: Decision,
    item: Any,
    now: datetime,
    retention: timedelta,
    tombstone: timedelta = DEFAULT_TOMBSTONE_RETENTION,
    trace: Mapping[str, str] | None = None,
    *,
    message_id: str | None = None,
    inflight_task_id: str | None = None,
    lateness: Lateness | None = None,
) -> Commit:
    """The commit of `decision`, made on `old` as loaded at `version`; `tombstone`: how
    long a closed order's tombstone outlives its keys (1.2); `trace`: the W3C trace
    context of the message decided, carried by every event (schemas/trace.py);
    `message_id`, `inflight_task_id`, `lateness`: the Commit's fields of the same names
    (an inbound message's ids, a firing's lateness)."""
    new = decision.state
    order_id = new.order_id
    schedule = tuple(d for i, d in new.deadlines.items() if old.deadlines.get(i) != d)
    unschedule = tuple(i for i in old.deadlines if i not in new.deadlines)
    outbox = [
        *_event_entries(order_id, decision, trace),
        *_other_entries(order_id, decision, now),
    ]
    timeline = (
        {
            "at": format_timestamp(now),
            "input": item.type,
            "message_id": field_of(item, "message_id"),
            "occurred_at": _occurred(item),
            "result": "applied" if decision.applied else "parked",
            "events": [event.type for event in decision.events],
            "dead_letters": len(decision.dead_letters),
        },
    )
    expire_in = expires_in(new, now, retention)
    return Commit(
        order_id=order_id,
        expected_version=version,
        state=new,
        message_id=message_id,
        inflight_task_id=inflight_task_id,
        schedule=schedule,
        unschedule=unschedule,
        outbox=tuple(outbox),
        timeline=timeline,
        forget=tuple(str(letter.message.get("message_id")) for letter in decision.dead_letters),
        expire_in=expire_in,
        tombstone_in=tombstone_after(expire_in, tombstone),
        lateness=lateness,
    )


def no_change(state: OrderState, decision: Decision) -> bool:
    """The decision writes nothing: same state, nothing to publish or dead-letter."""
    return (  # the cheap tests first: comparing two states walks both
        not decision.events
        and not decision.dead_letters
        and not decision.label_jobs
        and decision.state == state
    )


def _event_entries(
    order_id: str, decision: Decision, trace: Mapping[str, str] | None = None
) -> list[Entry]:
    entries = []
    for out in decision.events:
        cause = f"{order_id}|{out.cause}"
        event = event_body(out.type, order_id, out.time, out.data, cause, trace)
        entry = {"kind": "event", "event": event}
        entries.append((event["id"], formats.marked(formats.OUTBOX_ENTRY, entry)))
    return entries


def _other_entries(order_id: str, decision: Decision, now: datetime) -> list[Entry]:
    entries: list[Entry] = []
    for letter in decision.dead_letters:
        message_id = str(letter.message.get("message_id", ""))
        entry_id = str(uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{order_id}|{message_id}"))
        body = dead_letter_body(letter.task, letter.message, letter.reason, letter.kind, now)
        entry = {"kind": "dead_letter", "body": body}
        entries.append((entry_id, formats.marked(formats.OUTBOX_ENTRY, entry)))
    for job in decision.label_jobs:
        entry_id = str(uuid.uuid5(DEAD_LETTER_NAMESPACE, f"label|{order_id}|{job.request_id}"))
        entries.append(
            (
                entry_id,
                formats.marked(
                    formats.OUTBOX_ENTRY,
                    {"kind": "task", "name": LABEL_TASK, "args": [order_id, job.request_id]},
                ),
            )
        )
    return entries


def _occurred(item: Any) -> str | None:
    if isinstance(item, DeadlineFired):
        return format_timestamp(item.deadline.due_at)
    occurred = field_of(item, "occurred_at")
    return format_timestamp(occurred) if occurred else None
