"""Queues and exchanges of the contract (docs/asyncapi.yaml), declared by the worker at start-up,
and the names of the worker's own tasks."""

from __future__ import annotations

from kombu.entity import Exchange, Queue, binding  # `kombu` re-exports them lazily, unseen by mypy

# The inbound task names, derived from the message unions there (re-exported).
from schemas.inbound import INBOUND_TASKS as INBOUND_TASKS

INBOUND = "aftersales.inbound"
DEADLINES = "aftersales.deadlines"
CONTROL = "aftersales.control"
DEAD_LETTER = "aftersales.dead_letter"
EVENTS = "aftersales.events"
NOTIFICATIONS = "aftersales.notifications"
REFUNDS = "aftersales.refunds"

events_exchange = Exchange(EVENTS, type="topic", durable=True)
dead_letter_exchange = Exchange(DEAD_LETTER, type="direct", durable=True)

# The worker's own tasks (the inbound ones are schemas.inbound.INBOUND_TASKS).
DEADLINE_TASK = "aftersales.deadline"
DEADLINE_BATCH_TASK = "aftersales.deadline_batch"
LABEL_TASK = "aftersales.label"
TICK_TASK = "aftersales.tick"

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
