"""Every Celery signal receiver and bootstep of the worker, in one place.

`worker.celery` stays configuration: it names this module in `include` (Celery imports it
when a worker or beat starts, before `worker_init`) and its consumer steps as
"worker.shell.hooks:Class" strings, so the app never imports this module and no import cycle
runs through `worker/`. The receivers are connected by `RECEIVERS` at the bottom.
"""

from __future__ import annotations

import gc
import uuid
from importlib.metadata import PackageNotFoundError, version
from time import monotonic
from typing import Any, ClassVar

import structlog
from celery import bootsteps
from celery.signals import (
    after_task_publish,
    beat_init,
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    task_revoked,
    worker_init,
    worker_process_init,
)
from celery.worker import state as worker_state

from schemas import formats
from schemas.inbound import INBOUND_TASKS
from worker import runtime
from worker.adapters import amqp, keys, topology
from worker.adapters import beat_schedule as beat
from worker.adapters.topology import DEADLINE_BATCH_TASK, DEADLINE_TASK
from worker.celery import AMQP, app
from worker.logging import get_logger, never_fails, start_task
from worker.observability import hooks as metrics
from worker.observability import watchdog
from worker.service_layer.backlog import message_facts, order_of
from worker.settings import get_settings
from worker.shell import transport
from worker.shell.transport import INFLIGHT_PROPERTY

log = get_logger("aftersales.hooks")

BOOT_ID = uuid.uuid4().hex[:12]
"""Made once per worker process start (forked pool children share it)."""


def incarnation(node: str) -> str:
    """Who claims a deadline and beats `aftersales:alive:`: this node name *and* this boot,
    so a worker killed and restarted under its own name (systemd, Kubernetes) is a new
    claimant, and its predecessor's deadlines are re-sent once that one's key expires."""
    return f"{node}#{BOOT_ID}"


# --- consumer steps (named in worker/celery.py) -----------------------------------------------


class DeclareTopology(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Declare the outbound exchange, its bound queues and the dead-letter queue."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.connection:Connection"}

    def start(self, parent: Any) -> None:
        channel = parent.connection.default_channel
        for queue in topology.DECLARED:
            queue(channel).declare()


class Liveness(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Every second, `aftersales:alive:<node>#<boot>` with a short expiry: the sweep re-sends
    a deadline only when the worker incarnation that received it has stopped saying it is
    alive. The event loop's timer says it: a worker whose loop is stuck (its ETA tasks with
    it) stops saying so. Where the broker is the state's Redis, the reliable fetch's beat
    (worker/shell/transport.py, a thread, one script a second anyway) sets the key in the
    same round trip, as long as this timer has ticked within FRESH; the timer then does
    no I/O, ticks every CARRIED_PERIOD (each tick is a wake-up of an idle worker), and
    beats itself only when no such beat has set the key within FRESH. A stuck loop's key
    is gone within FRESH + TTL: 7.5 s."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.connection:Connection"}
    PERIOD = 1.0  # the timer's period where it beats the key itself
    CARRIED_PERIOD = 2.0  # ... where the fetch's beat carries the key: the tick only says
    # the loop runs
    TTL_MS = 5_000  # five missed beats: a busy or paused worker is not declared dead
    FRESH = 2.5  # seconds: the carried beat needs a tick this recent (a tick every
    # CARRIED_PERIOD, half a second late at most); the tick, such a beat

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.ticked = monotonic()
        self.carried: transport.CarriedAlive | None = None

    def start(self, parent: Any) -> None:
        claimant = incarnation(parent.hostname)
        self._beat(claimant)
        self.ticked = monotonic()
        if carried_by_fetch():
            self.carried = transport.CarriedAlive(
                keys.alive(claimant), self.TTL_MS, lambda: monotonic() - self.ticked < self.FRESH
            )
            transport.carried = self.carried
        period = self.PERIOD if self.carried is None else self.CARRIED_PERIOD
        self.timer_ref = parent.timer.call_repeatedly(period, self._tick, (claimant,))

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        if self.carried is not None and transport.carried is self.carried:
            transport.carried = None
        self.carried = None

    def _tick(self, claimant: str) -> None:
        self.ticked = monotonic()
        if self.carried is None or not self.carried.set_within(self.FRESH):
            self._beat(claimant)

    def _beat(self, claimant: str) -> None:
        try:
            runtime.store().heartbeat(claimant, self.TTL_MS)
        except Exception:  # Redis away: the sweep may re-send; fencing keeps that harmless
            log.warning("liveness beat failed", exc_info=True)


class StallWatchdog(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Exit (75) for a restart when the consumer stops fetching while inbound messages wait
    (worker/observability/watchdog.py). Only in a worker that consumes the inbound queue;
    AFTERSALES_STALL_AFTER=off turns it off."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, parent: Any) -> None:
        global _watchdog
        after = get_settings().stall_after
        queues = {queue.name for queue in parent.task_consumer.queues}
        if _watchdog is not None or after is None or topology.INBOUND not in queues:
            return
        stall_after = after.total_seconds()
        reader: list[Any] = []

        def waiting() -> int:
            if not reader:  # a connection of the watchdog's own thread
                reader.append(runtime.metrics_sources()[1])
            return int(reader[0].queued(topology.INBOUND))

        concurrency = int(parent.controller.concurrency or 1)
        _watchdog = watchdog.Watchdog(
            stall_after,
            waiting=waiting,
            busy=lambda: (
                len(worker_state.reserved_requests) >= concurrency
                or (inbound_batches is not None and inbound_batches.busy())
            ),
        )
        watchdog.run(_watchdog, _stop_worker)


_watchdog: watchdog.Watchdog | None = None
"""This worker's watchdog (the main process's), told of every fetch."""

inbound_batches: Any = None
"""The consumer's batch path (worker/shell/batch.py), when it runs: the watchdog asks it
whether messages are buffered or in a batch."""


def _stop_worker(code: int) -> None:
    worker_state.should_stop = code  # the event loop raises WorkerShutdown(code)


def carried_by_fetch() -> bool:
    """The reliable fetch's beat can carry the incarnation's alive key: the broker is the
    state's Redis (where the sweep reads that key) and the transport is the reliable
    fetch's (the worker sets `fetch_inflight` exactly then, worker/celery.py)."""
    return bool(
        app.conf.broker_transport_options.get("fetch_inflight")
        and app.conf.broker_transport == "worker.shell.transport:Transport"
    )


# --- signal receivers --------------------------------------------------------------------


def announce_release(**_: Any) -> None:
    """The first line of every worker and beat log: which release, which stored formats it
    reads and writes (docs/operations.md, "Upgrades"): a mixed fleet shows who is who."""
    log.info(
        "aftersales release",
        version=_installed_version(),
        reads=dict(formats.KNOWN),
        writes=dict(formats.WRITTEN),
    )


def _installed_version() -> str:
    try:
        return version("aftersales")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def declare_on_init(**_: Any) -> None:
    # Also declared here so `aftersales run` producers never publish into the void.
    with app.connection_for_write() as connection:
        if AMQP:  # an existing classic inbound is kept
            amqp.adopt_existing_inbound(app, connection)
        channel = connection.default_channel
        # The consumed queues as configured: quorum inbound with RabbitMQ (worker/adapters/amqp.py).
        for queue in (*topology.DECLARED, *app.conf.task_queues):
            queue(channel).declare()


@never_fails
def freeze_heap(**_: Any) -> None:
    """What the process holds once started (modules, the app, Celery's machinery) is kept
    for its life: moved out of the cyclic garbage collector's sight (`gc.freeze`), so
    that a full collection, which a burst of firings or messages triggers every few
    hundred, walks only what the tasks made. In the main process before the pool forks
    (the children inherit it, and no collection writes to the pages they share with it),
    again in each pool process."""
    gc.freeze()


@never_fails
def bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every log line of a task carries its id and name (worker/logging.py)."""
    start_task(task_id, getattr(task, "name", None))


@never_fails
def unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


@never_fails
def tell_watchdog(**_: Any) -> None:
    if _watchdog is not None:
        _watchdog.fetched()


@never_fails
def register_received(request: Any = None, **_: Any) -> None:
    """Backlog safety (worker/service_layer/backlog.py): an inbound message is in flight from
    the moment a worker takes it, before the prefetch buffer, until its commit (recorded by
    the fetch itself when the broker is the state's Redis, else here); a deadline task is
    claimed by this worker incarnation."""
    if request is not None and request.name == DEADLINE_TASK:
        _claim_deadline(request)
        return
    if request is not None and request.name == DEADLINE_BATCH_TASK:
        _claim_batch(request)
        return
    if request is None or request.name not in INBOUND_TASKS:
        return
    if recorded_by_fetch(request):
        return
    facts = message_facts(request.args)
    if facts is None:
        return  # it will be dead-lettered; nothing to wait for
    order_id, occurred = facts
    runtime.store().mark_inflight(order_id, request.id, occurred, runtime.utcnow())


@never_fails
def forget_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A revoked inbound message is discarded, never committed: its in-flight entry goes
    now, not when it turns stale (it would hold its order's deadlines back until then).
    Celery sends the task as `sender` and the request's context (id, args)."""
    if request is None or getattr(sender, "name", None) not in INBOUND_TASKS:
        return
    order_id, task_id = order_of(getattr(request, "args", None)), getattr(request, "id", None)
    if order_id and isinstance(task_id, str):
        runtime.store().clear_inflight(order_id, task_id)


def recorded_by_fetch(request: Any) -> bool:
    """The reliable fetch recorded this message in flight as it took it (fetch.lua)."""
    message = getattr(request, "message", None)
    properties = getattr(message, "properties", None)
    return isinstance(properties, dict) and bool(properties.get(INFLIGHT_PROPERTY))


def _claim_deadline(request: Any) -> None:
    """This worker incarnation claims the deadline's task now: the sweep must not send it
    again while that process lives (a restart under the same name is another claimant)."""
    args = request.args
    if isinstance(args, list | tuple) and len(args) >= 2:
        claimant = incarnation(request.hostname)
        runtime.store().claim(str(args[0]), str(args[1]), claimant, runtime.utcnow())


def _claim_batch(request: Any) -> None:
    """A batch task: this incarnation claims all its members, recorded in one write."""
    args = request.args
    members = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(members, list):
        claimed = [(str(m[0]), str(m[1])) for m in members if isinstance(m, list) and len(m) >= 2]
        claimant = incarnation(request.hostname)
        runtime.store().claim_many(claimed, claimant, runtime.utcnow())


def adopt_on_beat_init(**_: Any) -> None:
    """Beat publishes barriers through `aftersales.inbound`: the queue as it exists."""
    if AMQP:
        with app.connection_for_write() as connection:
            amqp.adopt_existing_inbound(app, connection)


def tick_has_work() -> bool:
    """For beat's tick schedule (worker/adapters/beat_schedule.py): one read, the tick's
    conditions."""
    return runtime.scheduler().tick_has_work()


beat.work_probe = tick_has_work

RECEIVERS: tuple[tuple[Any, Any], ...] = (
    (worker_init, announce_release),
    (worker_init, declare_on_init),
    (worker_init, freeze_heap),
    (worker_process_init, freeze_heap),
    (beat_init, announce_release),
    (beat_init, adopt_on_beat_init),
    (task_prerun, bind_task),
    (task_postrun, unbind_task),
    (task_received, register_received),
    (task_received, tell_watchdog),
    (task_revoked, forget_revoked),
    # Metrics (worker/observability/hooks.py): the endpoint, then one fact per signal.
    (worker_init, metrics.on_worker_init),
    (beat_init, metrics.on_beat_init),
    (worker_process_init, metrics.on_process_init),
    (worker_init, metrics.on_process_init),
    (task_received, metrics.on_received),
    (task_prerun, metrics.on_prerun),
    (task_postrun, metrics.on_postrun),
    (task_retry, metrics.on_retry),
    (task_failure, metrics.on_failure),
    (after_task_publish, metrics.on_published),
)
"""(signal, receiver): every receiver of the worker. Module functions live as long as the
process, so Celery's weak references to them never die."""

for _signal, _receiver in RECEIVERS:
    _signal.connect(_receiver)
