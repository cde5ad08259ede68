"""Every Redis key this worker uses, in one place (as arq does).

Per-order keys share the hash tag `{order_id}` so that one order's state can move to
Redis Cluster as a unit. The schedule and outbox indexes are global by nature.
"""

from __future__ import annotations

import json

PREFIX = "aftersales"


def order_state(order_id: str) -> str:
    """Hash: `state` (JSON OrderState) and `version` (int, optimistic concurrency)."""
    return f"{PREFIX}:order:{{{order_id}}}"


def seen_messages(order_id: str) -> str:
    """Set of message ids already applied (or parked) to the order: idempotency."""
    return f"{PREFIX}:seen:{{{order_id}}}"


def message_digests(order_id: str) -> str:
    """Hash message_id -> SHA-256 of the first valid body seen under that id: a reused id
    with another body is refused, not silently taken for a duplicate."""
    return f"{PREFIX}:digests:{{{order_id}}}"


def inflight(order_id: str) -> str:
    """Hash task_id -> "occurred_epoch received_epoch" of inbound messages taken from the
    queue but not yet committed: the backlog a deadline must not overtake."""
    return f"{PREFIX}:inflight:{{{order_id}}}"


def timeline(order_id: str) -> str:
    """List of JSON lines: what happened to the order, for the `order` CLI command."""
    return f"{PREFIX}:timeline:{{{order_id}}}"


SCHEDULE = f"{PREFIX}:deadlines"
"""Sorted set: member deadline_member(order, id), score due epoch. Deadlines not yet armed."""

ARMED = f"{PREFIX}:deadlines:armed"
"""Sorted set of deadlines whose ETA task was sent, score due epoch; swept when overdue."""

HOLDERS = f"{PREFIX}:deadlines:held"
"""Hash member -> "node epoch": which worker received the deadline's task, and when. The
sweep re-sends only deadlines whose holder is gone, so a busy cluster is not flooded."""

RESENDS = f"{PREFIX}:deadlines:resends"
"""Hash member -> how often the sweep re-sent it: each re-send waits twice as long."""

ALIVE_PREFIX = f"{PREFIX}:alive:"
"""`ALIVE_PREFIX + holder`: set with a short expiry, every second, by every worker
incarnation (node name and boot id, worker/app.py) and every reliable-fetch consumer
(worker/transport.py): its absence means that process is gone."""


def alive(holder: str) -> str:
    return f"{ALIVE_PREFIX}{holder}"


FETCH_CONSUMERS = f"{PREFIX}:fetch:consumers"
"""Set of reliable-fetch consumer ids that may hold messages (worker/transport.py)."""

FETCH_HELD_PREFIX = f"{PREFIX}:fetch:held:"
"""`FETCH_HELD_PREFIX + consumer`: hash delivery tag -> "<payload bytes> <source list>" of
the messages that consumer took and has not acked ("<size>:<bytes><source list>" for bytes
that are not a kombu message); restored when it is no longer alive."""

FETCH_SWEEP = f"{PREFIX}:fetch:sweep"
"""Hash: `last` (Redis time of the last restore sweep), `quiet_until` (no consumer is
declared dead before this time: set after a gap in the sweeps, e.g. a Redis restart)."""


def fetch_held(consumer: str) -> str:
    return f"{FETCH_HELD_PREFIX}{consumer}"


FIRED_LATENESS = f"{PREFIX}:deadlines:lateness"
"""List of recent firing lateness values in milliseconds (capped), for the metric."""

OUTBOX_PENDING = f"{PREFIX}:outbox:pending"
"""Sorted set of outbox entry ids not yet confirmed published, score commit epoch."""

OUTBOX_ENTRIES = f"{PREFIX}:outbox:entries"
"""Hash entry id -> JSON {kind, ...}: events to publish, dead letters, tasks to send."""


def deadline_member(order_id: str, deadline_id: str) -> str:
    """Unambiguous member for an (order, deadline) pair; ids may contain any character."""
    return json.dumps([order_id, deadline_id], separators=(",", ":"))


def parse_deadline_member(member: str | bytes) -> tuple[str, str]:
    order_id, deadline_id = json.loads(member)
    return str(order_id), str(deadline_id)


def policy(digest: str) -> str:
    """String: a policy document (canonical JSON) named by the hash orders refer to it by
    (worker/adapters/state_codec.py). Immutable, never expires; global, not per order."""
    return f"{PREFIX}:policy:{digest}"
