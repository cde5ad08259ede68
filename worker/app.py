"""The Celery app: `celery -A worker worker|beat|flower` finds `app` here.

JSON only, late acks with rejection on worker loss, task events on for Flower, the
contract's queues and exchanges declared at start-up, and the beat tick that drives the
durable deadline schedule and the outbox relay.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar
from urllib.parse import urlsplit

from celery import Celery, bootsteps
from celery.signals import worker_init

from worker import topology
from worker.logging import get_logger, setup_logging
from worker.settings import SettingsError, get_settings
from worker.signals import receiver

try:
    settings = get_settings()
except SettingsError as exc:  # a bad policy file or setting stops start-up, readably
    raise SystemExit(f"aftersales: cannot start: {exc}") from None
setup_logging()

app = Celery("aftersales", broker=settings.broker_url, include=["tasks"])
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
    # One message per process at a time: a crash strands at most that one.
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_track_started=True,
    enable_utc=True,
    timezone="UTC",
    task_queues=topology.CONSUMED,
    task_default_queue=topology.INBOUND,
    task_create_missing_queues=False,
    task_routes={
        "aftersales.deadline": {"queue": topology.DEADLINES},
        "aftersales.label": {"queue": topology.DEADLINES},
        "aftersales.tick": {"queue": topology.CONTROL},
    },
    broker_transport_options={
        # Must exceed the deadline horizon: an ETA task older than this is redelivered
        # (celery#4766). Deadlines further out wait in Redis, not in the broker.
        "visibility_timeout": int(settings.visibility_timeout.total_seconds()),
    },
    broker_connection_retry_on_startup=True,
    # kombu's Redis transport loses a message popped but not yet recorded as unacked when
    # the worker is killed (kombu#305); this one moves it atomically (worker/transport.py).
    broker_transport=(
        "worker.transport:Transport" if urlsplit(settings.broker_url).scheme == "redis" else None
    ),
    worker_consumer="worker.consumer:DeadLetteringConsumer",
    worker_hijack_root_logger=False,
    beat_schedule={
        "aftersales-tick": {
            "task": "aftersales.tick",
            "schedule": settings.sweep_interval.total_seconds(),
            # A tick nobody ran in time is worthless: the next one does the same work.
            "options": {"expires": max(5.0, settings.sweep_interval.total_seconds() * 5)},
        }
    },
)


class DeclareTopology(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Declare the outbound exchange, its bound queues and the dead-letter queue."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.connection:Connection"}

    def start(self, parent: Any) -> None:
        channel = parent.connection.default_channel
        for queue in topology.DECLARED:
            queue(channel).declare()


BOOT_ID = uuid.uuid4().hex[:12]
"""Made once per worker process start (forked pool children share it)."""


def incarnation(node: str) -> str:
    """Who holds a deadline and beats `aftersales:alive:`: this node name *and* this boot,
    so a worker killed and restarted under its own name (systemd, Kubernetes) is a new
    holder, and its predecessor's deadlines are re-sent once that one's key expires."""
    return f"{node}#{BOOT_ID}"


class Liveness(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Every second, `aftersales:alive:<node>#<boot>` with a short expiry: the sweep re-sends
    a deadline only when the worker incarnation that received it has stopped saying it is
    alive."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.connection:Connection"}
    PERIOD = 1.0
    TTL_MS = 5_000  # five missed beats: a busy or paused worker is not declared dead

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        holder = incarnation(parent.hostname)
        self._beat(holder)
        self.timer_ref = parent.timer.call_repeatedly(self.PERIOD, self._beat, (holder,))

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def _beat(self, holder: str) -> None:
        from worker import runtime

        try:
            runtime.store().heartbeat(holder, self.TTL_MS)
        except Exception:  # Redis away: the sweep may re-send; fencing keeps that harmless
            get_logger("aftersales.app").warning("liveness beat failed", exc_info=True)


app.steps["consumer"].add(DeclareTopology)
app.steps["consumer"].add(Liveness)


@receiver(worker_init)
def _declare_on_init(**_: Any) -> None:
    # Also declared here so `aftersales run` producers never publish into the void.
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in (*topology.DECLARED, *topology.CONSUMED):
            queue(channel).declare()
