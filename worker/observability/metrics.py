"""The metric families the worker and beat record in-process (docs/observability.md).

Imported by `record.enable()` only, after `server.prepare()` has pointed
PROMETHEUS_MULTIPROC_DIR at this run's directory: every prefork child then writes its own
file, and the main process's /metrics sums them. No label takes an order id, a message
id or any other unbounded value: task names, deadline kinds, event types, results and
dead-letter reasons are closed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
"""Seconds: a deadline fires within milliseconds when all is well, seconds in a burst
(bench/README.md), minutes when something is wrong; the contract's bound is minutes."""

HANDLING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
"""Seconds: a message is handled in a few milliseconds (one or two Redis round trips)."""

DEADLINE_LATENESS = Histogram(
    "aftersales_deadline_lateness_seconds",
    "Deadline firings: time from the later of the due time and when the worker first knew "
    "the deadline, to the firing.",
    ["kind"],
    buckets=LATENESS_BUCKETS,
)
DEADLINE_BACKDATED = Counter(
    "aftersales_deadline_backdated_total",
    "Deadline firings of deadlines already past due when the worker learned of them.",
    ["kind"],
)
DEADLINE_BACKDATED_SECONDS = Counter(
    "aftersales_deadline_backdated_seconds_total",
    "Sum over those firings of the time between the due time and when the worker learned "
    "of the deadline (the producer's delay, not the worker's).",
    ["kind"],
)
DEADLINES_FIRED = Counter(
    "aftersales_deadlines_fired_total",
    "Deadline firing attempts by kind and result (applied, parked, stale, not_due, waiting).",
    ["kind", "result"],
)
MESSAGES = Counter(
    "aftersales_messages_total",
    "Inbound messages handled, by task and result (applied, rejected, held, duplicate, "
    "dead_lettered, retried, failed).",
    ["task", "result"],
)
TASK_SECONDS = Histogram(
    "aftersales_task_duration_seconds",
    "Time a worker process spent running a task, by task name.",
    ["task"],
    buckets=HANDLING_BUCKETS,
)
INBOUND_BATCH = Histogram(
    "aftersales_inbound_batch_messages",
    "Inbound messages a pool process decided and committed together (one batch).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
DEAD_LETTERS = Counter(
    "aftersales_dead_letters_total",
    "Messages sent to aftersales.dead_letter, by reason.",
    ["reason"],
)
EVENTS = Counter(
    "aftersales_events_total",
    "Outcome events committed for publishing (pushed by the commit or left for the relay), "
    "by event type.",
    ["type"],
)
LAST_FETCH = Gauge(
    "aftersales_worker_last_fetch_timestamp_seconds",
    "When this worker last received a task from the broker (Unix time).",
    multiprocess_mode="max",
)
LAST_COMPLETION = Gauge(
    "aftersales_worker_last_completion_timestamp_seconds",
    "When one of this worker's processes last finished a task (Unix time).",
    multiprocess_mode="max",
)
FETCH_RESTORED = Counter(
    "aftersales_fetch_restored_total",
    "Inbound messages a reliable-fetch sweep gave back from consumers that died.",
)
LABEL_SECONDS = Histogram(
    "aftersales_label_duration_seconds",
    "Time to make a return label's files and record them.",
    buckets=HANDLING_BUCKETS,
)
LABEL_FAILURES = Counter(
    "aftersales_label_failures_total",
    "Label task runs that failed (each retry, and the last run before the dead letter).",
)
TICK_RAN = Gauge(
    "aftersales_tick_last_run_timestamp_seconds",
    "When one of this worker's processes last ran the beat tick (Unix time).",
    multiprocess_mode="max",
)
BEAT_SENT = Gauge(
    "aftersales_beat_last_tick_sent_timestamp_seconds",
    "When this beat last sent its tick (Unix time). Served by beat only.",
    multiprocess_mode="max",
)
