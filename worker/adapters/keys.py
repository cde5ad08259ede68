"""Every Redis key this worker uses, in one place (as arq does).

The module-level names are the single-Redis keyspace: per-order keys share the hash tag
`{order_id}`; the schedule, outbox and lateness indexes are one global key each. A
`Keyspace` names keys for one deployment: `SINGLE` gives exactly these names (data
written before Redis Cluster support stays readable), `CLUSTER` splits every global index
into `CLUSTER_SHARDS` hash-tagged shards and tags an order's keys with its shard, so one
commit script touches one slot (docs/cluster.md).
"""

from __future__ import annotations

import json
import zlib

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


def expired(order_id: str) -> str:
    """String "1" (1.2): a closed order whose keys expire; it outlives them by
    `AFTERSALES_TOMBSTONE_RETENTION`, so a late message for the order is known to be for
    an expired one (worker/rules/retention.py, docs/operations.md#retention)."""
    return f"{PREFIX}:expired:{{{order_id}}}"


SCHEDULE = f"{PREFIX}:deadlines"
"""Sorted set: member deadline_member(order, id), score due epoch. Deadlines not yet armed."""

ARMED = f"{PREFIX}:deadlines:armed"
"""Sorted set of deadlines whose ETA task was sent, score due epoch; swept when overdue."""

CLAIMS = f"{PREFIX}:deadlines:held"
"""Hash member -> "claimant epoch": which worker incarnation received the deadline's task
(claimed it), and when. The sweep re-sends only deadlines whose claimant is gone, so a
busy cluster is not flooded. (The key keeps its first name, ":held": it is stored data.)"""

RESENDS = f"{PREFIX}:deadlines:resends"
"""Hash member -> how often the sweep re-sent it: each re-send waits twice as long."""

ALIVE_PREFIX = f"{PREFIX}:alive:"
"""`ALIVE_PREFIX + claimant`: set with a short expiry, every second, by every worker
incarnation (node name and boot id, worker/celery.py) and every reliable-fetch consumer
(worker/shell/transport.py): its absence means that process is gone."""


def alive(claimant: str) -> str:
    return f"{ALIVE_PREFIX}{claimant}"


FETCH_CONSUMERS = f"{PREFIX}:fetch:consumers"
"""Set of reliable-fetch consumer ids that may have taken messages (worker/shell/transport.py)."""

FETCH_TAKEN_PREFIX = f"{PREFIX}:fetch:held:"
"""`FETCH_TAKEN_PREFIX + consumer`: hash delivery tag -> "<payload bytes> <source list>" of
the messages that consumer took and has not acked ("<size>:<bytes><source list>" for bytes
that are not a kombu message); restored when it is no longer alive. The key keeps its
first name, ":held:": it is stored data."""

FETCH_RESTORE = f"{PREFIX}:fetch:sweep"
"""Hash (the key keeps its first name: stored data): `last` (Redis time of the last
restore pass), `quiet_until` (no consumer is declared dead before this time: set after a
gap in the restore passes, e.g. a Redis restart)."""


def fetch_taken(consumer: str) -> str:
    return f"{FETCH_TAKEN_PREFIX}{consumer}"


BEAT_TICKED = f"{PREFIX}:beat:ticked"
"""Epoch seconds of the last beat tick a worker ran (health probes, docs/observability.md)."""

FETCH_MOVING_PREFIX = f"{PREFIX}:fetch:moving:"
"""`FETCH_MOVING_PREFIX + consumer`: list an idle consumer's blocking BLMOVE moves a message
into from the list its wait key names; taken from there by its next fetch, or restored to
that list when the consumer is no longer alive."""

FETCH_WAIT_PREFIX = f"{PREFIX}:fetch:wait:"
"""`FETCH_WAIT_PREFIX + consumer`: the list that consumer's BLMOVE waits on, written by the
fetch script before the consumer sends it."""


def fetch_moving(consumer: str) -> str:
    return f"{FETCH_MOVING_PREFIX}{consumer}"


def fetch_wait(consumer: str) -> str:
    return f"{FETCH_WAIT_PREFIX}{consumer}"


FIRED_LATENESS = f"{PREFIX}:deadlines:lateness"
"""List of recent firing lateness values in milliseconds (capped), for the metric."""

OUTBOX_PENDING = f"{PREFIX}:outbox:pending"
"""Sorted set of outbox entry ids not yet confirmed published, score commit epoch."""

OUTBOX_ENTRIES = f"{PREFIX}:outbox:entries"
"""Hash entry id -> JSON {kind, ...}: events to publish, dead letters, tasks to send."""


_MEMBER = json.JSONEncoder(separators=(",", ":"))
"""The schedule members' encoder, made once: `json.dumps` with a keyword makes one per call.
Its text is the same as `json.dumps([...], separators=(",", ":"))`, byte for byte: members
written by any earlier release are matched exactly (ZREM, ZSCORE)."""


def deadline_member(order_id: str, deadline_id: str) -> str:
    """Unambiguous member for an (order, deadline) pair; ids may contain any character."""
    return _MEMBER.encode([order_id, deadline_id])


def parse_deadline_member(member: str | bytes) -> tuple[str, str]:
    order_id, deadline_id = json.loads(member)
    return str(order_id), str(deadline_id)


def policy(digest: str) -> str:
    """String: a policy document (canonical JSON) named by the hash orders refer to it by
    (worker/adapters/state_codec.py). Immutable, never expires; global, not per order."""
    return f"{PREFIX}:policy:{digest}"


CLUSTER_SHARDS = 64
"""Shards of every global index in Redis Cluster mode. Fixed forever: it is part of every
key name. 64 spreads the indexes evenly over 3 primaries (about 21 shards each) and still
over up to 64, while a tick walks them in a few ms (3 small calls per shard)."""


class Keyspace:
    """Key names of one deployment: one Redis (`shards == 1`, the module's names) or a
    Redis Cluster (`shards > 1`, every key carrying the hash tag of its shard)."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.clustered = shards > 1

    def shard_of(self, order_id: str) -> int:
        """Stable across processes and versions (CRC-32, not Python's salted `hash`)."""
        return zlib.crc32(order_id.encode()) % self.shards if self.clustered else 0

    def _order(self, kind: str, order_id: str) -> str:
        if not self.clustered:
            return f"{PREFIX}:{kind}:{{{order_id}}}"
        # The shard's tag comes first, so braces inside the order id are never the tag.
        return f"{PREFIX}:{kind}:{{s{self.shard_of(order_id):02d}}}:{order_id}"

    def _sharded(self, base: str, shard: int) -> str:
        return f"{base}:{{s{shard:02d}}}" if self.clustered else base

    def order_state(self, order_id: str) -> str:
        return self._order("order", order_id)

    def seen_messages(self, order_id: str) -> str:
        return self._order("seen", order_id)

    def message_digests(self, order_id: str) -> str:
        return self._order("digests", order_id)

    def inflight(self, order_id: str) -> str:
        return self._order("inflight", order_id)

    def timeline(self, order_id: str) -> str:
        return self._order("timeline", order_id)

    def expired(self, order_id: str) -> str:
        """1.2: the tombstone of a closed order, outliving its keys (retention.py)."""
        return self._order("expired", order_id)

    def schedule(self, shard: int) -> str:
        return self._sharded(SCHEDULE, shard)

    def armed(self, shard: int) -> str:
        return self._sharded(ARMED, shard)

    def claims(self, shard: int) -> str:
        return self._sharded(CLAIMS, shard)

    def resends(self, shard: int) -> str:
        return self._sharded(RESENDS, shard)

    def lateness(self, shard: int) -> str:
        return self._sharded(FIRED_LATENESS, shard)

    def outbox_pending(self, shard: int) -> str:
        return self._sharded(OUTBOX_PENDING, shard)

    def outbox_entries(self, shard: int) -> str:
        return self._sharded(OUTBOX_ENTRIES, shard)


SINGLE = Keyspace(1)
"""One Redis: today's key names."""

CLUSTER = Keyspace(CLUSTER_SHARDS)
"""Redis Cluster: hash-tagged shards."""
