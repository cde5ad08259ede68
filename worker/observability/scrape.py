"""Figures read when Prometheus scrapes: deadlines pending and overdue, the outbox, queue
depths, the last beat tick. Served by every worker and by beat, so that beat stopping (the
failure the overdue figures exist to reveal) shows on the workers' endpoints.

Nothing here runs per message: a scrape (every 15 s by default) costs a few commands per
Redis shard and one depth query per queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas import channels
from worker.adapters.figures import Figures, read_figures
from worker.adapters.redis_store import RedisStore
from worker.logging import get_logger
from worker.service_layer.ports import BacklogReader

log = get_logger("aftersales.metrics")

QUEUES = (channels.INBOUND, channels.DEADLINES, channels.DEAD_LETTER)

OVERDUE_GRACE = timedelta(seconds=5)
"""A deadline due this long ago and not fired is overdue (or five tick periods, when
longer): a healthy worker fires within milliseconds, a burst within a few seconds
(bench/README.md), and the sweep re-sends a lost one after two ticks."""


def overdue_grace(sweep_interval: timedelta) -> timedelta:
    return max(OVERDUE_GRACE, sweep_interval * 5)


class StateCollector(Collector):
    """The figures of the state's Redis and the broker, read at each scrape."""

    def __init__(
        self,
        sources: Callable[[], tuple[RedisStore, BacklogReader]],
        sweep_interval: timedelta,
    ) -> None:
        self._sources = sources
        self._built: tuple[RedisStore, BacklogReader] | None = None
        self.grace = overdue_grace(sweep_interval)

    def _get(self) -> tuple[RedisStore, BacklogReader]:
        if self._built is None:  # built on the first scrape, in the server's thread
            self._built = self._sources()
        return self._built

    def collect(self) -> Iterator[Any]:
        now = time.time()
        store, queues = self._get()
        up = GaugeMetricFamily(
            "aftersales_dependency_up",
            "1 if the last scrape could read the dependency (state Redis, broker), else 0.",
            labels=["dependency"],
        )
        try:
            cut = datetime.fromtimestamp(now, UTC) - self.grace
            figures = read_figures(store, cut)
        except Exception:
            log.warning("metrics: state figures unreadable", exc_info=True)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            yield from _state_families(figures, now)
        depth = GaugeMetricFamily(
            "aftersales_queue_messages",
            "Messages waiting in a queue of the broker (Redis lists or RabbitMQ).",
            labels=["queue"],
        )
        try:
            for queue in QUEUES:
                depth.add_metric([queue], queues.queued(queue))
        except Exception:
            log.warning("metrics: queue depths unreadable", exc_info=True)
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            yield depth
        yield up


def _state_families(figures: Figures, now: float) -> Iterator[GaugeMetricFamily]:
    pending = GaugeMetricFamily(
        "aftersales_deadlines_pending",
        "Deadlines not fired yet: waiting in Redis (scheduled) or sent as ETA tasks (armed).",
        labels=["state"],
    )
    pending.add_metric(["scheduled"], figures.scheduled)
    pending.add_metric(["armed"], figures.armed)
    yield pending
    yield GaugeMetricFamily(
        "aftersales_deadlines_overdue",
        "Deadlines past due by more than the grace (5 s, or 5 ticks) and not fired. Must stay 0.",
        value=figures.overdue,
    )
    oldest = 0.0
    if figures.overdue and figures.oldest_due is not None:
        oldest = max(0.0, now - figures.oldest_due)
    yield GaugeMetricFamily(
        "aftersales_deadline_oldest_overdue_seconds",
        "How long the earliest overdue deadline has been due (0 when none is overdue).",
        value=oldest,
    )
    yield GaugeMetricFamily(
        "aftersales_outbox_unconfirmed",
        "Outbox entries (events, dead letters, label tasks) committed, not yet confirmed sent.",
        value=figures.outbox_unconfirmed,
    )
    age = 0.0 if figures.oldest_outbox is None else max(0.0, now - figures.oldest_outbox)
    yield GaugeMetricFamily(
        "aftersales_outbox_oldest_unconfirmed_seconds",
        "Age of the oldest unconfirmed outbox entry (0 when there is none).",
        value=age,
    )
    if figures.beat_ticked is not None:
        yield GaugeMetricFamily(
            "aftersales_beat_last_tick_timestamp_seconds",
            "When a worker last ran beat's tick, as recorded in Redis (Unix time).",
            value=figures.beat_ticked,
        )
