"""Redis store, the deadline schedule (ports.Schedule): arming, the sweep of lost
deadlines, which worker claimed a deadline's task, heartbeats, and the operator's reads
(docs/design.md: deadlines).

A commit writes and removes an order's deadlines (order_store.py); from then on they are
this module's: the tick arms those entering the horizon and re-sends lost ones. Global
indexes: one key, or one per shard on a cluster (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from worker.adapters import keys
from worker.adapters.direct_publish import DirectEvents
from worker.adapters.shards import StateClient, gone_claimants
from worker.adapters.store_base import StoreBase, epoch, from_epoch, script
from worker.service_layer.ports import Lateness


class ScheduleStore(StoreBase):
    def __init__(
        self,
        client: StateClient,
        direct: DirectEvents | None = None,
        keyspace: keys.Keyspace | None = None,
    ) -> None:
        super().__init__(client, direct, keyspace)
        self._arm = client.register_script(script("arm.lua"))
        self._sweep = client.register_script(script("sweep.lua"))

    def arm_due(
        self, until: datetime, limit: int, recheck_after: float, now: datetime | None = None
    ) -> list[tuple[str, str, datetime]]:
        """Move deadlines due before `until` to the armed set; returns (order, id, due).
        The sweep looks at one again `recheck_after` s after its due time or `now`."""
        floor = epoch(now) if now is not None else 0
        armed: list[tuple[str, str, datetime]] = []
        for shard in self._walk():
            if len(armed) >= limit:
                break
            flat = self._arm(
                keys=[self.keys.schedule(shard), self.keys.armed(shard)],
                args=[epoch(until), limit - len(armed), recheck_after, floor],
            )
            armed += [
                (*keys.parse_deadline_member(flat[i]), from_epoch(float(flat[i + 1])))
                for i in range(0, len(flat), 2)
            ]
        return armed

    def tick_has_work(self, arm_until: datetime, now: datetime, relay_before: datetime) -> bool:
        """Whether a tick would do anything, in one round trip: a deadline to arm before
        `arm_until`, an armed one overdue at `now` (maybe lost), an outbox entry committed
        before `relay_before` and not confirmed (the conditions of arm_due, lost_armed and
        stale_outbox)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.zrangebyscore(self.keys.schedule(shard), "-inf", epoch(arm_until), 0, 1)
            pipe.zrangebyscore(self.keys.armed(shard), "-inf", epoch(now), 0, 1)
            pipe.zrangebyscore(self.keys.outbox_pending(shard), "-inf", epoch(relay_before), 0, 1)
        return any(pipe.execute())

    def lost_armed(
        self,
        now: datetime,
        grace: float,
        limit: int,
        backoff_cap: float,
        max_claim_age: float,
        queued: int = 0,
    ) -> list[tuple[str, str]]:
        """The sweep: armed deadlines overdue whose task no live worker incarnation claims
        and, with `queued` messages waiting in the deadlines queue, that have waited there
        longer than `max_claim_age` (see sweep.lua)."""
        lost: list[tuple[str, str]] = []
        alive: dict[str, bool] = {}  # claimant -> alive, read once per walk
        for shard in self._walk():
            if len(lost) >= limit:
                break
            armed, claims = self.keys.armed(shard), self.keys.claims(shard)
            gone = gone_claimants(self.client, armed, claims, epoch(now), limit, alive)
            if gone is None:
                continue  # nothing overdue in this shard
            members = self._sweep(
                keys=[armed, claims, self.keys.resends(shard)],
                args=[
                    epoch(now),
                    grace,
                    limit - len(lost),
                    backoff_cap,
                    max_claim_age,
                    queued,
                    *gone,
                ],
            )
            lost += [keys.parse_deadline_member(member) for member in members]
        return lost

    def claim(self, order_id: str, deadline_id: str, claimant: str, now: datetime) -> None:
        """`claimant`, a worker incarnation (node name and boot id), received the deadline's
        task: the sweep leaves it to that process while its alive key lasts."""
        member = keys.deadline_member(order_id, deadline_id)
        claims = self.keys.claims(self.keys.shard_of(order_id))
        self.client.hset(claims, member, f"{claimant} {epoch(now)}")

    def claim_many(
        self, deadlines: Sequence[tuple[str, str]], claimant: str, now: datetime
    ) -> None:
        """`claim` for every (order, deadline) of a batch task, in one write."""
        if deadlines:
            value = f"{claimant} {epoch(now)}"
            by_shard: dict[int, dict[Any, Any]] = {}  # redis-py types its keys invariantly
            for order_id, deadline_id in deadlines:
                mapping = by_shard.setdefault(self.keys.shard_of(order_id), {})
                mapping[keys.deadline_member(order_id, deadline_id)] = value
            for shard, mapping in by_shard.items():
                self.client.hset(self.keys.claims(shard), mapping=mapping)

    def release(self, order_id: str, deadline_id: str, even_if_armed: bool = False) -> None:
        """Forget the claim on a deadline: no longer armed (a stale task ran), or its task
        failed and the sweep should send it again."""
        member = keys.deadline_member(order_id, deadline_id)
        shard = self.keys.shard_of(order_id)
        if even_if_armed or self.client.zscore(self.keys.armed(shard), member) is None:
            self.client.hdel(self.keys.claims(shard), member)

    def heartbeat(self, claimant: str, ttl_ms: int) -> None:
        """`claimant` (a worker incarnation) is alive for the next `ttl_ms` (one key, in
        whatever slot: the sweep reads it outside its script)."""
        self.client.set(keys.alive(claimant), "1", px=ttl_ms)

    def next_deadlines(self, count: int) -> list[tuple[str, str, datetime | None, str]]:
        """The next `count` pending deadlines overall: (order, id, due or None, where).
        Up to `count` of each shard; the caller sorts and cuts."""
        rows: list[tuple[str, str, datetime | None, str]] = []
        for shard in range(self.keys.shards):
            for member, score in self._first_scored(self.keys.schedule(shard), count):
                rows.append((*keys.parse_deadline_member(member), from_epoch(score), "scheduled"))
            for member, _ in self._first_scored(self.keys.armed(shard), count):
                rows.append((*keys.parse_deadline_member(member), None, "armed"))
        return rows

    def _first_scored(self, key: str, count: int) -> list[tuple[bytes | str, float]]:
        # withscores=True answers (member, score) pairs, the score cast by float
        scored = self.client.zrange(key, 0, count - 1, withscores=True)
        return cast(list[tuple[bytes | str, float]], scored)

    def schedule_size(self) -> tuple[int, int]:
        scheduled = armed = 0
        for shard in range(self.keys.shards):
            scheduled += int(self.client.zcard(self.keys.schedule(shard)))
            armed += int(self.client.zcard(self.keys.armed(shard)))
        return scheduled, armed

    def lateness_values(self) -> list[float]:
        """Recent firing lateness (ms, what the worker answers for): the newest 10 000."""
        return [late.ms for late in self.lateness_records()]

    def lateness_records(self) -> list[Lateness]:
        """Recent firings' lateness, both figures: the newest 10 000 over all shards."""
        per_shard = max(1, 10_000 // self.keys.shards)
        values: list[Lateness] = []
        for shard in range(self.keys.shards):
            raw = self.client.lrange(self.keys.lateness(shard), 0, per_shard - 1)
            values += [Lateness.parse(value) for value in raw]
        return values
