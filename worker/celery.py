"""The Celery app: `celery -A worker worker|beat|flower` finds `app` here.

JSON only, late acks with rejection on worker loss, task events only when a monitor asks
for them (Flower does), the contract's queues and exchanges declared at start-up, and the
beat tick that drives the durable deadline schedule and the outbox relay.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import after_setup_logger, celeryd_init

from worker.adapters import amqp, keys, topology
from worker.adapters.beat_schedule import TickSchedule
from worker.logging import follow_celery_level, follow_worker_options, setup_logging
from worker.settings import Settings, SettingsError, get_settings

try:
    settings = get_settings()
except SettingsError as exc:  # a bad policy file or setting stops start-up, readably
    raise SystemExit(f"aftersales: cannot start: {exc}") from None
setup_logging()
# `--loglevel` applies to this project's lines too, from the worker's first signal on.
celeryd_init.connect(follow_worker_options, weak=False)
after_setup_logger.connect(follow_celery_level, weak=False)

# worker.shell.hooks: the signal receivers and consumer steps; Celery imports it in a worker
# and in beat (before worker_init), and this module needs no import of it.


def _fetch_inflight(settings: Settings) -> dict[str, Any] | None:
    if settings.broker_url != settings.redis_url or settings.redis_cluster:
        return None
    prefix, suffix = keys.inflight("\0").split("\0")
    return {"prefix": prefix, "suffix": suffix, "tasks": sorted(topology.INBOUND_TASKS)}


def broker_options(settings: Settings) -> dict[str, Any]:
    """The broker's transport options (the Redis ones: worker/shell/transport.py)."""
    return {
        # Must exceed the deadline horizon: an ETA task older than this is redelivered
        # (celery#4766). Deadlines further out wait in Redis, not in the broker.
        "visibility_timeout": int(settings.visibility_timeout.total_seconds()),
        # An idle worker waits in Redis on the inbound queue: a message there wakes it at
        # once; the deadlines and control queues are looked at when the wait ends, every
        # AFTERSALES_FETCH_WAIT (2 s) at most.
        "fetch_wait_queue": topology.INBOUND,
        "fetch_block_timeout": settings.fetch_wait.total_seconds(),
        # The fetch records an inbound message in its order's in-flight hash in the same
        # step as it takes it, when the state is in the broker's Redis (docs/design.md,
        # backlog safety); else the worker does as Celery receives it (worker/shell/hooks.py).
        "fetch_inflight": _fetch_inflight(settings),
        # One fetch takes up to a whole inbound batch (worker/shell/batch.py).
        "fetch_batch": max(16, settings.inbound_batch),
    }


AMQP = amqp.is_amqp(settings.broker_url)
"""RabbitMQ as the broker: quorum inbound, native delayed delivery (worker/adapters/amqp.py)."""
app = (amqp.AmqpCelery if AMQP else Celery)(
    "aftersales", broker=settings.broker_url, include=["worker.shell.hooks", "tasks"]
)
app.conf.update(
    # JSON only: pickle would let any producer run code in the worker.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    event_serializer="json",
    result_accept_content=["json"],
    result_backend=None,
    task_ignore_result=True,
    # At-least-once: ack after the task has run, give the message back if the process
    # dies. Effects are made exactly-once by the commit, not by the broker.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Four messages per pool process fetched ahead (Celery's default; the inbound batch
    # path raises it to two batches a pool process, worker/shell/batch.py): a worker killed
    # with them loses none (the reliable fetch gives them back), and each inbound one is
    # in its order's in-flight hash from the moment it is received, before it waits in
    # the buffer (docs/design.md, backlog safety).
    worker_prefetch_multiplier=4,
    # Task events cost the consumer a publish per task state and are read only by a
    # monitor: Flower turns them on itself (the `enable_events` control command, which
    # it repeats), `celery -A worker control enable_events` does it by hand, `-E` keeps
    # them on from the start (docs/operations.md).
    worker_send_task_events=False,
    task_send_sent_event=False,
    task_track_started=True,
    enable_utc=True,
    timezone="UTC",
    task_queues=topology.CONSUMED,
    task_default_queue=topology.INBOUND,
    task_create_missing_queues=False,
    task_routes={
        topology.DEADLINE_TASK: {"queue": topology.DEADLINES},
        topology.LABEL_TASK: {"queue": topology.DEADLINES},
        topology.TICK_TASK: {"queue": topology.CONTROL},
    },
    broker_transport_options=broker_options(settings),
    broker_connection_retry_on_startup=True,
    # kombu's Redis transport loses a message popped but not yet recorded as unacked when
    # the worker is killed (kombu#305); this one moves it atomically (worker/shell/transport.py).
    # Redis only: RabbitMQ itself gives an unacked message back when its channel dies.
    broker_transport=(
        "worker.shell.transport:Transport"
        if urlsplit(settings.broker_url).scheme == "redis"
        else None
    ),
    worker_consumer="worker.shell.consumer:DeadLetteringConsumer",
    worker_hijack_root_logger=False,
    beat_schedule={
        "aftersales-tick": {
            "task": topology.TICK_TASK,
            # Every interval while it has work; idle, every AFTERSALES_IDLE_TICK_EVERY.
            "schedule": TickSchedule(
                settings.sweep_interval.total_seconds(),
                idle_every=settings.idle_tick_every.total_seconds(),
            ),
            # A tick nobody ran in time is worthless: the next one does the same work.
            "options": {"expires": settings.tick_expires.total_seconds()},
        }
    },
)

if AMQP:  # the queues, confirms and delayed delivery of RabbitMQ (worker/adapters/amqp.py)
    app.conf.update(amqp.celery_options())

# Named, not imported: Celery resolves the classes when the consumer starts.
app.steps["consumer"].update(
    {
        "worker.shell.hooks:DeclareTopology",
        "worker.shell.hooks:Liveness",
        "worker.shell.hooks:StallWatchdog",
    }
)
