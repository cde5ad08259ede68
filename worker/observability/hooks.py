"""The metrics' Celery signal receivers; worker/shell/hooks.py connects them with the
others (one table). Each is wrapped by `never_fails`: a failing hook is logged, never
allowed to fail the task.
"""

from __future__ import annotations

import time
from typing import Any

from schemas.channels import LABEL_TASK, TICK_TASK
from schemas.inbound import INBOUND_TASKS
from worker import runtime
from worker.adapters.figures import record_tick
from worker.logging import get_logger, never_fails
from worker.observability import record, server, tracing
from worker.settings import get_settings

log = get_logger("aftersales.metrics")

_started: dict[str, float] = {}
"""task id -> when its run began (perf counter), in the process that runs it."""


def start(role: str) -> None:
    """Metrics on (unless AFTERSALES_METRICS_PORT is off): a worker serves on the port, beat
    on the next one, so both run on one host with one setting."""
    settings = get_settings()
    if settings.metrics_port is None or record.enabled():
        return
    path = server.prepare()
    from worker.observability.scrape import StateCollector

    collector = StateCollector(runtime.metrics_sources, settings.sweep_interval)
    port = settings.metrics_port + (1 if role == "beat" else 0)
    server.serve(port, settings.metrics_address, path, [collector])


@never_fails
def on_worker_init(**_: Any) -> None:
    start("worker")


@never_fails
def on_beat_init(**_: Any) -> None:
    start("beat")


@never_fails
def on_process_init(**_: Any) -> None:
    """Each pool process (and a solo worker) sets up its own tracer provider, if asked."""
    tracing.setup()


@never_fails
def on_received(request: Any = None, **_: Any) -> None:
    record.fetched()


@never_fails
def on_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id and record.enabled():
        _started[task_id] = time.perf_counter()


@never_fails
def on_postrun(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str = "", **_: Any
) -> None:
    name = getattr(task, "name", None)
    if name == TICK_TASK and state == "SUCCESS":  # for the health probe, metrics on or off
        record_tick(runtime.store(), runtime.utcnow())
    began = _started.pop(task_id or "", None)
    if began is None or not isinstance(name, str):
        return
    seconds = time.perf_counter() - began
    record.task_ran(name, seconds)
    if name in INBOUND_TASKS and state == "SUCCESS" and isinstance(retval, str):
        record.message(name, retval)
    elif name == TICK_TASK and state == "SUCCESS":
        record.tick_ran()
    elif name == LABEL_TASK and state == "SUCCESS":
        record.label_ran(seconds)
        if retval == "dead_lettered":
            record.label_failed()


@never_fails
def on_retry(request: Any = None, **_: Any) -> None:
    name = getattr(request, "task", None) or getattr(request, "name", None)
    if name in INBOUND_TASKS:
        record.message(name, "retried")
    elif name == LABEL_TASK:
        record.label_failed()


@never_fails
def on_failure(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "name", None)
    if name in INBOUND_TASKS:
        record.message(name, "failed")
    elif name == LABEL_TASK:
        record.label_failed()


@never_fails
def on_published(sender: str | None = None, **_: Any) -> None:
    if sender == TICK_TASK:  # only beat sends the tick
        record.beat_sent()
