"""The contract's queue, exchange and task names, as plain strings (contract.md sections
2 and 3; docs/asyncapi.yaml). The kombu entities built from them are in
worker/adapters/topology.py; code that only needs a name imports it from here and so
loads no broker library."""

from __future__ import annotations

# The inbound task names, derived from the message unions there (re-exported).
from schemas.inbound import INBOUND_TASKS as INBOUND_TASKS

INBOUND = "aftersales.inbound"
DEADLINES = "aftersales.deadlines"
CONTROL = "aftersales.control"
DEAD_LETTER = "aftersales.dead_letter"
EVENTS = "aftersales.events"
NOTIFICATIONS = "aftersales.notifications"
REFUNDS = "aftersales.refunds"

# The worker's own tasks (the inbound ones are INBOUND_TASKS).
DEADLINE_TASK = "aftersales.deadline"
DEADLINE_BATCH_TASK = "aftersales.deadline_batch"
LABEL_TASK = "aftersales.label"
TICK_TASK = "aftersales.tick"
