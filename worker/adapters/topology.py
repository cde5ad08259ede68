"""Queues and exchanges of the contract (docs/asyncapi.yaml) as kombu entities, declared by the
worker at start-up. Their names (and the task names) are plain strings in schemas/channels.py,
re-exported here for the shell."""

from __future__ import annotations

from kombu.entity import Exchange, Queue, binding  # `kombu` re-exports them lazily, unseen by mypy

from schemas.channels import (
    CONTROL,
    DEAD_LETTER,
    DEADLINE_BATCH_TASK,
    DEADLINE_TASK,
    DEADLINES,
    EVENTS,
    INBOUND,
    INBOUND_TASKS,
    LABEL_TASK,
    NOTIFICATIONS,
    REFUNDS,
    TICK_TASK,
)

events_exchange = Exchange(EVENTS, type="topic", durable=True)
dead_letter_exchange = Exchange(DEAD_LETTER, type="direct", durable=True)


# Celery's default routing for a named queue: a direct exchange and routing key of the
# same name. Producers in any language rely on exactly this.
inbound_queue = Queue(INBOUND, Exchange(INBOUND, type="direct"), routing_key=INBOUND)
# Deadline ETA tasks wait in their own queue: they must not count as inbound backlog, and
# their prefetch must not starve inbound messages.
deadlines_queue = Queue(DEADLINES, Exchange(DEADLINES, type="direct"), routing_key=DEADLINES)
control_queue = Queue(CONTROL, Exchange(CONTROL, type="direct"), routing_key=CONTROL)
dead_letter_queue = Queue(DEAD_LETTER, dead_letter_exchange, routing_key=DEAD_LETTER)

notifications_queue = Queue(NOTIFICATIONS, events_exchange, routing_key="#", durable=True)
refunds_queue = Queue(
    REFUNDS,
    bindings=[
        binding(events_exchange, routing_key="refund.#"),
        binding(events_exchange, routing_key="order.cancelled"),
    ],
    durable=True,
)

CONSUMED = (inbound_queue, deadlines_queue, control_queue)
"""The queues a worker takes tasks from."""

DECLARED = (dead_letter_queue, notifications_queue, refunds_queue)
"""Declared at start-up so that nothing published before a consumer binds is lost."""

__all__ = [
    "CONSUMED",
    "CONTROL",
    "DEADLINES",
    "DEADLINE_BATCH_TASK",
    "DEADLINE_TASK",
    "DEAD_LETTER",
    "DECLARED",
    "EVENTS",
    "INBOUND",
    "INBOUND_TASKS",
    "LABEL_TASK",
    "NOTIFICATIONS",
    "REFUNDS",
    "TICK_TASK",
    "control_queue",
    "dead_letter_exchange",
    "dead_letter_queue",
    "deadlines_queue",
    "events_exchange",
    "inbound_queue",
    "notifications_queue",
    "refunds_queue",
]
