"""What the worker records: one call per fact, in-process, no I/O (counters in shared
memory files under the prefork pool). While metrics are off every call returns at once.

A recording that fails is logged and dropped: a metric never fails a task or a commit
(docs/observability.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import wraps
from types import ModuleType
from typing import Any, ParamSpec, get_args

from worker.logging import get_logger
from worker.observability import tracing
from worker.rules.state import DeadlineKind
from worker.service_layer.ports import Lateness

log = get_logger("aftersales.metrics")

_metrics: ModuleType | None = None

P = ParamSpec("P")

RESULTS = {"parked": "held", "reused": "dead_lettered", "expired": "dead_lettered"}
"""An inbound task's return value as the `result` label: the service's word for a message
waiting for an earlier fact is "parked"; the issue and the dashboard say "held"."""


KINDS = frozenset(get_args(DeadlineKind))
"""The `kind` label's values: a deadline id from a task that names no known kind counts as
"other", so no label value ever comes from outside."""


def enable() -> None:
    """Create the metric families (after server.prepare chose how values are stored)."""
    global _metrics
    from worker.observability import metrics

    _metrics = metrics


def enabled() -> bool:
    return _metrics is not None


def _recording(fn: Callable[P, None]) -> Callable[P, None]:
    @wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        if _metrics is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception:
            log.warning("metric not recorded", metric=fn.__name__, exc_info=True)

    return guarded


def _m() -> Any:
    return _metrics


_children: dict[tuple[Any, ...], Any] = {}
"""Labelled children by (family, label values): a firing records three, and prometheus_
client's `labels()` checks and locks on every call. Every label value here comes from a
bounded set (deadline kinds, results, event types, dead-letter reasons), and no family is
ever cleared, so the cache stays small and never holds a child the family dropped."""


def _child(family: Any, *values: str) -> Any:
    key = (family, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = family.labels(*values)
    return child


@_recording
def deadline_fired(kind: str, result: str, lateness: Lateness | None) -> None:
    kind = kind if kind in KINDS else "other"
    _child(_m().DEADLINES_FIRED, kind, result).inc()
    if lateness is None or result != "applied":
        return
    _child(_m().DEADLINE_LATENESS, kind).observe(max(0.0, lateness.ms / 1000))
    backdated = (lateness.since_due_ms - lateness.ms) / 1000
    if backdated > 0:
        _m().DEADLINE_BACKDATED.labels(kind).inc()
        _m().DEADLINE_BACKDATED_SECONDS.labels(kind).inc(backdated)


@_recording
def committed(event_types: Sequence[str], dead_letter_reasons: Sequence[str]) -> None:
    for event_type in event_types:
        _child(_m().EVENTS, event_type).inc()
    for reason in dead_letter_reasons:
        _child(_m().DEAD_LETTERS, reason).inc()


@_recording
def dead_lettered(reason: str) -> None:
    _m().DEAD_LETTERS.labels(reason).inc()


@_recording
def message(task: str, result: str) -> None:
    _m().MESSAGES.labels(task, RESULTS.get(result, result)).inc()


@_recording
def task_ran(task: str, seconds: float) -> None:
    _m().TASK_SECONDS.labels(task).observe(seconds)
    _m().LAST_COMPLETION.set(time.time())


@_recording
def batch_ran(messages: int) -> None:
    _m().INBOUND_BATCH.observe(messages)


@_recording
def fetched() -> None:
    _m().LAST_FETCH.set(time.time())


@_recording
def restored(count: int) -> None:
    _m().FETCH_RESTORED.inc(count)


@_recording
def label_ran(seconds: float) -> None:
    _m().LABEL_SECONDS.observe(seconds)


@_recording
def label_failed() -> None:
    _m().LABEL_FAILURES.inc()


@_recording
def tick_ran() -> None:
    _m().TICK_RAN.set(time.time())


@_recording
def beat_sent() -> None:
    _m().BEAT_SENT.set(time.time())


class Recorder:
    """The service's observer (worker/service_layer/ports.py), wired by worker/runtime.py."""

    def span(self, name: str) -> AbstractContextManager[Any]:
        return tracing.span(name)

    def deadline_fired(self, kind: str, result: str, lateness: Lateness | None) -> None:
        deadline_fired(kind, result, lateness)

    def committed(self, event_types: Sequence[str], dead_letter_reasons: Sequence[str]) -> None:
        committed(event_types, dead_letter_reasons)
