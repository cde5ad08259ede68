"""The figures a scrape reads from the state's Redis: pending and overdue deadlines, the
outbox not yet confirmed, the last beat tick (docs/observability.md).

Read only when Prometheus scrapes (or a health probe asks), never per message: a handful
of commands per shard, none of which walks a whole set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.adapters import keys
from worker.adapters.redis_store import RedisStore


@dataclass(frozen=True)
class Figures:
    scheduled: int  # deadlines waiting in Redis only (beyond the arming horizon)
    armed: int  # deadlines sent as ETA tasks and not fired yet
    overdue: int  # pending deadlines due before the overdue cut
    oldest_due: float | None  # epoch seconds of the earliest pending deadline
    outbox_unconfirmed: int
    oldest_outbox: float | None  # epoch seconds of the oldest unconfirmed outbox entry
    beat_ticked: float | None  # epoch seconds of the last tick a worker ran


def read_figures(store: RedisStore, overdue_before: datetime) -> Figures:
    """One pipeline per shard (its keys share a slot in a cluster), plus the tick key."""
    cut = overdue_before.timestamp()
    scheduled = armed = overdue = outbox = 0
    oldest: list[float] = []
    oldest_outbox: list[float] = []
    for shard in range(store.keys.shards):
        pipe = store.client.pipeline(transaction=False)
        for key in (store.keys.schedule(shard), store.keys.armed(shard)):
            pipe.zcard(key)
            pipe.zcount(key, "-inf", f"({cut}")
            pipe.zrange(key, 0, 0, withscores=True)
        pipe.zcard(store.keys.outbox_pending(shard))
        pipe.zrange(store.keys.outbox_pending(shard), 0, 0, withscores=True)
        (s_card, s_over, s_first, a_card, a_over, a_first, o_card, o_first) = pipe.execute()
        scheduled += int(s_card)
        armed += int(a_card)
        overdue += int(s_over) + int(a_over)
        outbox += int(o_card)
        oldest += [float(score) for _, score in (*s_first, *a_first)]
        oldest_outbox += [float(score) for _, score in o_first]
    ticked = store.client.get(keys.BEAT_TICKED)
    return Figures(
        scheduled=scheduled,
        armed=armed,
        overdue=overdue,
        oldest_due=min(oldest) if oldest else None,
        outbox_unconfirmed=outbox,
        oldest_outbox=min(oldest_outbox) if oldest_outbox else None,
        beat_ticked=float(ticked) if ticked is not None else None,
    )


def record_tick(store: RedisStore, at: datetime) -> None:
    """A worker ran the beat tick at `at` (one SET a tick; no expiry: its age is the point)."""
    store.client.set(keys.BEAT_TICKED, repr(at.timestamp()))
