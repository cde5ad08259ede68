"""The five inbound tasks of the contract (docs/rules.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import structlog
from celery import Task
from celery.app.trace import LOG_SUCCESS
from pydantic import ValidationError

from schemas.dead_letters import DeadLetterReason
from schemas.formats import NewerFormat
from schemas.inbound import INBOUND_TASKS, TASK_OF_TYPE, parse_message
from schemas.trace import trace_context
from tasks.errors import TRANSIENT, retry_later
from tasks.typed import task
from worker import runtime
from worker.logging import bind, get_logger, redact, start_task
from worker.observability import record, tracing
from worker.rules.codes import ORDER_EXPIRED
from worker.service_layer.backlog import message_facts
from worker.service_layer.service import Arrival, Outcome

log = get_logger("aftersales.tasks")

NEWER_FORMAT_PAUSE = 0.5
"""Seconds a message for an order in a newer format waits before it goes back to the
queue: a retry of an inbound task is not delayed (its eta is ignored), and without a pause
an older worker would spin on it until a newer one takes it."""


def _validation_detail(task_name: str, body: Any, errors: list[Any]) -> str:
    kind = body.get("type") if isinstance(body, dict) else None
    other = TASK_OF_TYPE.get(kind) if isinstance(kind, str) else None
    if other is not None and other != task_name:
        return f"message type {kind!r} belongs to task {other!r}, not {task_name!r}"
    # Built from locations and messages only: input values may hold personal data.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'message'}: {error['msg']}"
        for error in errors
    )


def handle_inbound(
    task: Task,
    task_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    trace: dict[str, str] | None = None,
) -> str:
    """`trace`: the message's trace context (schemas/trace.py), read from its headers if
    not given."""
    task_id = task.request.id or ""
    accepted = _accept(task_name, task_id, args, kwargs)
    if isinstance(accepted, str):
        return accepted
    message, body, facts = accepted
    # Its in-flight entry ends in the same round trip as the commit (or the duplicate check).
    if trace is None:
        trace = trace_context(_headers(task))
    outcome = runtime.service().handle_message(message, task_id, _digest(body), trace)
    return _result(task_name, body, message, outcome, facts, task_id)


def _accept(
    task_name: str, task_id: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> str | tuple[Any, Any, tuple[str, Any] | None]:
    """The task's arguments as a validated message (with its body and facts), or the
    result of refusing them (dead-lettered). Binds the log context."""
    facts = message_facts(args)
    if facts:
        bind(order_id=facts[0])
    if len(args) != 1 or kwargs:
        original = {"args": list(args), "kwargs": kwargs}
        error = f"{task_name} takes exactly one positional argument, the message object"
        return _refuse(task_name, original, error, "invalid_message", facts, task_id)
    body = args[0]
    try:
        with tracing.span("parse"):
            message = parse_message(task_name, body, now=runtime.utcnow())
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        detail = _validation_detail(task_name, body, errors)
        log.warning("invalid message dead-lettered", error_count=len(errors))
        return _refuse(
            task_name,
            body,
            detail,
            "invalid_message",
            facts,
            task_id,
            errors=[dict(error) for error in errors],
        )
    bind(order_id=message.order_id, message_id=message.message_id, message_type=message.type)
    return message, body, facts


def _result(
    task_name: str,
    body: Any,
    message: Any,
    outcome: Outcome,
    facts: tuple[str, Any] | None,
    task_id: str,
) -> str:
    """What a handled message's task returns; a reused id or an expired order is
    dead-lettered here."""
    if outcome.status == "reused":
        error = f"message_id {message.message_id!r} was already used with a different body"
        log.warning("reused message id dead-lettered")
        return _refuse(task_name, body, error, "message_id_reused", facts, task_id)
    if outcome.status == "expired":
        error = (
            f"order {message.order_id!r} closed and its keys expired (AFTERSALES_RETENTION); "
            "its tombstone says so (AFTERSALES_TOMBSTONE_RETENTION): a message for it must "
            "not start the order afresh"
        )
        log.warning("message for an expired order dead-lettered")
        return _refuse(task_name, body, error, ORDER_EXPIRED, facts, task_id)
    # One line per message: what happened and the events it published ride on Celery's
    # "succeeded" line (every line of the task carries the bound values, worker/logging.py)
    # instead of a line of their own, which cost as much again.
    bind(status=outcome.status, version=outcome.version, events=list(outcome.events))
    if outcome.status == "applied" and "action.rejected" in outcome.events:
        return "rejected"  # applied, and its answer is a refusal (metrics, Flower)
    return outcome.status


def _headers(task: Task) -> dict[str, Any]:
    """The trace-context headers of the task message (Celery puts every header of a
    protocol 2 message on the request)."""
    return {name: getattr(task.request, name, None) for name in ("traceparent", "tracestate")}


def _refuse(
    task_name: str,
    original: Any,
    error: str,
    reason: DeadLetterReason,
    facts: tuple[str, Any] | None,
    task_id: str,
    errors: list[dict[str, Any]] | None = None,
) -> str:
    """Dead-letter the message (nothing was committed for it) and end its in-flight entry."""
    runtime.dead_letter(task_name, original, error, reason, errors=errors)
    _clear_inflight(facts, task_id, original)
    return "dead_lettered"


def _digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _clear_inflight(facts: tuple[str, Any] | None, task_id: str, original: Any = None) -> None:
    # Without facts (an occurred_at that does not parse), the fetch may still have
    # recorded it under the body's order id (worker/shell/fetch.lua).
    order_id = facts[0] if facts else _order_id_of(original)
    if order_id and task_id:
        runtime.store().clear_inflight(order_id, task_id)


def _order_id_of(original: Any) -> str | None:
    order_id = original.get("order_id") if isinstance(original, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


# How much of an unexpected error's text a dead letter keeps: the type and the start of
# the message say what broke; the rest may quote the input at length.
ERROR_TEXT = 300


def _dead_letter_failure(
    task: Task, task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
) -> str:
    """A message the worker could not process for a reason of its own (a bug, an input
    no check foresaw): dead-lettered for replay after a fix, never acked and lost."""
    log.exception("message failed unexpectedly; dead-lettered")
    original: Any = (
        args[0] if len(args) == 1 and not kwargs else {"args": list(args), "kwargs": kwargs}
    )
    error = redact(f"{type(exc).__name__}: {exc}")[:ERROR_TEXT]
    facts = message_facts(args)
    return _refuse(task_name, original, error, "processing_failed", facts, task.request.id or "")


def _make_task(task_name: str) -> Task:
    def run(self: Task, *args: Any, **kwargs: Any) -> str:
        try:
            trace = trace_context(_headers(self))
            with tracing.inbound(trace, task_name):
                return handle_inbound(self, task_name, args, kwargs, trace)
        except NewerFormat as exc:
            # The order's state was written by a newer release (a rolling upgrade): leave
            # it and let the message come back, by then perhaps to a newer worker. An
            # inbound retry runs at once (its eta is ignored), hence the pause.
            log.warning("order stored by a newer release; message left for later", error=str(exc))
            time.sleep(NEWER_FORMAT_PAUSE)
            raise retry_later(self, exc) from exc
        except TRANSIENT as exc:
            # Redis or the broker is away: the message waits and comes back; not lost.
            log.warning("transient failure, will retry", error=str(exc))
            raise retry_later(self, exc) from exc
        except Exception as exc:
            try:
                return _dead_letter_failure(self, task_name, args, kwargs, exc)
            except TRANSIENT as down:  # cannot even dead-letter: keep it, try again
                raise retry_later(self, down) from down

    run.__name__ = task_name.rsplit(".", 1)[1]
    return task(
        name=task_name,
        bind=True,
        max_retries=None,  # transient failures only: never give up on a valid message
        Request="worker.shell.redaction:RedactedRequest",
    )(run)


BatchItem = tuple[str, str, list[Any], dict[str, Any], dict[str, str]]
"""One inbound message of a batch as the consumer hands it to a pool process
(worker/shell/batch.py): task name, task id, args, kwargs, trace context."""

_trace_log = logging.getLogger("celery.app.trace")
"""Celery's logger of a task's end: each message of a batch has Celery's line there
(LOG_SUCCESS), which says what became of it, as for a task."""


def handle_batch(items: Sequence[BatchItem]) -> list[str | None]:
    """Run in a pool process: the inbound messages the consumer took together, decided
    and committed as one batch (Service.handle_many: begins in one round trip, commits in
    another). Returns each message's task result, or None for a message to go Celery's
    own way, one task with its retries and dead letters (worker/shell/batch.py): every
    message of a batch that met an error, and all of them while OpenTelemetry traces
    (spans are per task)."""
    if not items or tracing.tracer() is not None:
        return [None] * len(items)
    began = time.perf_counter()
    results: list[str | None] = [None] * len(items)
    contexts: dict[int, dict[str, Any]] = {}
    arrivals: list[Arrival] = []
    accepted: list[tuple[int, Any, Any, tuple[str, Any] | None]] = []
    for index, (task_name, task_id, args, kwargs, trace) in enumerate(items):
        start_task(task_id, task_name)
        try:
            accepted_or_not = _accept(task_name, task_id, args, kwargs)
        except Exception:  # Celery's way dead-letters it, or retries it (an outage)
            log.warning("message left to its own task", exc_info=True)
            continue
        if isinstance(accepted_or_not, str):
            results[index] = accepted_or_not
            contexts[index] = structlog.contextvars.get_contextvars()
            continue
        message, body, facts = accepted_or_not
        accepted.append((index, message, body, facts))
        arrivals.append(Arrival(message, task_id, _digest(body), trace_context(trace)))
    structlog.contextvars.clear_contextvars()
    try:
        outcomes = runtime.service().handle_many(arrivals)
    except Exception:
        # An outage or a bug: the messages not refused go one at a time, each its own
        # task with its retries; those this batch committed are duplicates there.
        log.warning("batch failed; its messages go one at a time", exc_info=True)
        outcomes = []
    for (index, message, body, facts), outcome in zip(accepted, outcomes, strict=False):
        task_name, task_id = items[index][0], items[index][1]
        start_task(task_id, task_name)
        bind(order_id=message.order_id, message_id=message.message_id, message_type=message.type)
        try:
            results[index] = _result(task_name, body, message, outcome, facts, task_id)
        except Exception:
            log.warning("message left to its own task", exc_info=True)
            continue
        contexts[index] = structlog.contextvars.get_contextvars()
    _report(items, results, contexts, time.perf_counter() - began)
    return results


def _report(
    items: Sequence[BatchItem],
    results: list[str | None],
    contexts: dict[int, dict[str, Any]],
    seconds: float,
) -> None:
    """Per message of a batch, what a task's signals and Celery's log would say: the
    metrics (its share of the batch's time) and the "succeeded" line with its context."""
    record.batch_ran(len(items))
    share = seconds / len(items)
    for index, ((task_name, task_id, *_), result) in enumerate(zip(items, results, strict=True)):
        if result is None:
            continue
        record.task_ran(task_name, share)
        record.message(task_name, result)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**contexts.get(index, {}))
        _trace_log.info(
            LOG_SUCCESS,
            {"id": task_id, "name": task_name, "runtime": share, "return_value": repr(result)},
        )
    structlog.contextvars.clear_contextvars()


INBOUND = {name: _make_task(name) for name in INBOUND_TASKS}
order_event = INBOUND["aftersales.order_event"]
buyer_action = INBOUND["aftersales.buyer_action"]
seller_action = INBOUND["aftersales.seller_action"]
carrier_event = INBOUND["aftersales.carrier_event"]
platform_action = INBOUND["aftersales.platform_action"]
