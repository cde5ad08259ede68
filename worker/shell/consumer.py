"""A Celery consumer that dead-letters what it cannot even turn into a task.

Celery's default is to log and ack (or reject) undecodable messages, pickled bodies and
unknown task names: the message is gone; and a body of the wrong shape or nesting raises
inside the consumer, which stops the worker. The contract says bad input is never
dropped, so every task message is screened (worker/shell/screen.py) before Celery's strategy
sees it, and whatever is refused, or still fails in the strategy, lands in
`aftersales.dead_letter` with the original body and the reason (docs/input-safety.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer
from kombu import compression
from kombu.message import Message
from kombu.utils.imports import symbol_by_name

from schemas.dead_letters import DeadLetterReason
from worker.adapters import topology
from worker.logging import get_logger
from worker.settings import get_settings
from worker.shell import batch, screen
from worker.shell.transport import INFLIGHT_PROPERTY

log = get_logger("aftersales.consumer")

# Celery headers a producer may set that make Celery drop or hold an inbound fact: past
# `expires` it discards and acks the task (an order.paid that waited behind a backlog would
# be gone), a hard `timelimit` kills the process mid-commit and acks, and an `eta` keeps
# the fact unacked in the worker's memory until then (in flight, holding the order's
# deadlines back; copied to another worker after the visibility timeout; a flood of them
# fills the worker). A fact is applied whenever it arrives, so on inbound tasks they are
# ignored.
IGNORED_INBOUND_HEADERS = ("expires", "timelimit", "eta")

# What a dead letter keeps of a body refused as too large: enough to recognise it; the
# whole body is named by its length and SHA-256 (storing it would defeat the limit).
TOO_LARGE_PREFIX = 4096


def _original(message: Message, keep: int | None = None) -> dict[str, Any]:
    body = message.body
    raw = (
        screen.raw_original(body, keep)
        if isinstance(body, bytes | bytearray | str)
        else {"text": str(body)}
    )
    headers = message.headers or {}
    return {
        **raw,
        "headers": {k: headers[k] for k in ("id", "task", "lang") if k in headers},
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
    }


def _no_decompression(body: bytes) -> bytes:
    raise ValueError("compressed bodies are not accepted")


def refuse_compressed_bodies() -> None:
    """kombu decompresses a body whose `compression` header names a method when it makes
    the Message, before any check, without bound: a few kilobytes of zlib or bzip2 make
    gigabytes. No compressed body is accepted here, so every method's decoder refuses:
    the message reaches `on_decode_error` with its bytes as sent. Encoders are kept."""
    for content_type in compression.encoders():
        encoder, _ = compression.get_encoder(content_type)
        compression.register(encoder, _no_decompression, content_type)


refuse_compressed_bodies()  # this module is loaded by the worker, before it consumes


def _is_recursion(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, RecursionError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Message], None]:
        """Celery's handler, behind the screen and a net that catches what it raises."""
        handle = super().create_task_handler(*args, **kwargs)
        settings = get_settings()
        limits = screen.Limits(settings.max_message_bytes, settings.max_message_depth)
        broker_errors = tuple(self.connection_errors) + tuple(self.channel_errors)

        def one_by_one(message: Message) -> None:
            try:
                handle(message)
            except broker_errors:
                raise  # the consumer reconnects; the message comes back
            except Exception as exc:
                # Raising here would stop the worker, and late acks would hand the same
                # message to the next one: dead-letter it instead.
                log.exception("task message failed in the consumer; dead-lettered")
                self._dead_letter(message, "unprocessable", f"{type(exc).__name__}: {exc}")

        batches = self._inbound_batches(one_by_one, settings.inbound_batch)

        def on_task_received(message: Message) -> None:
            refusal = self._screen(message, limits)
            if refusal is not None:
                log.warning(
                    "task message refused",
                    reason=refusal.reason,
                    error=refusal.error,
                    task_name=_task_name(message),
                )
                self._dead_letter(message, refusal.reason, refusal.error)
                return
            _ignore_inbound_limits(message.headers)
            if batches is not None and _task_name(message) in topology.INBOUND_TASKS:
                try:
                    if batches.offer(message):
                        return
                except Exception:  # not foreseen: Celery's way, behind the same net
                    log.exception("an inbound message could not join a batch")
            one_by_one(message)

        return on_task_received

    def _inbound_batches(
        self, one_by_one: Callable[[Message], None], size: int
    ) -> batch.InboundBatches | None:
        """The batch path (worker/shell/batch.py) where it runs: batches of more than one,
        an event loop to flush them on, and the reliable fetch recording each inbound
        message in flight (the Redis broker that is the state's Redis)."""
        from worker.shell import hooks  # imports the app: import late

        if size < 2 or getattr(self, "hub", None) is None or not hooks.carried_by_fetch():
            hooks.inbound_batches = None
            return None
        from worker.observability import hooks as metrics

        def received() -> None:
            hooks.tell_watchdog()
            metrics.on_received()

        batches = batch.InboundBatches(
            self, one_by_one, size, run_batch=symbol_by_name(batch.RUNNER), received=received
        )
        hooks.inbound_batches = batches
        return batches

    def _screen(self, message: Message, limits: screen.Limits) -> screen.Refusal | None:
        try:
            return self._check(message, limits)
        except Exception as exc:  # a check that did not foresee some input: refuse it
            log.exception("screening a task message failed; dead-lettered")
            return screen.Refusal("unprocessable", f"{type(exc).__name__}: {exc}")

    def _check(self, message: Message, limits: screen.Limits) -> screen.Refusal | None:
        refusal = screen.refuse_raw(
            message.body, message.content_type, message.content_encoding, message.headers, limits
        )
        if refusal is not None:
            return refusal
        try:
            payload = message.decode()  # cached on the message: Celery does not decode again
        except Exception as exc:
            if _is_recursion(exc):
                return screen.Refusal("too_deep", "JSON nested too deep to decode")
            return screen.Refusal("undecodable", f"{type(exc).__name__}: {exc}")
        return screen.refuse_decoded(payload, limits, message.body)

    def _dead_letter(self, message: Message, reason: DeadLetterReason, error: str) -> None:
        from worker.runtime import dead_letter  # the runtime imports the app: import late

        keep = TOO_LARGE_PREFIX if reason == "too_large" else None
        try:
            dead_letter(
                task=_task_name(message),
                original=_original(message, keep),
                error=error,
                reason=reason,
                content_type=_text_or_none(message.content_type),
            )
        except Exception:
            # Broker down: give the message back rather than lose it.
            log.exception("dead-lettering failed; message returned to the queue")
            message.reject_log_error(log, self.connection_errors, requeue=True)
            return
        message.ack_log_error(log, self.connection_errors)
        _forget_inflight(message)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        reason: DeadLetterReason = "undecodable"
        error = f"{type(exc).__name__}: {exc}"
        refusal = self._refused_as_sent(message)
        if refusal is not None:  # too large or compressed: say so, keep only a prefix
            reason, error = refusal.reason, refusal.error
        log.warning(
            "undecodable message dead-lettered",
            reason=reason,
            error=error,
            content_type=_text_or_none(message.content_type),
        )
        self._dead_letter(message, reason, error)

    def _refused_as_sent(self, message: Message) -> screen.Refusal | None:
        settings = get_settings()
        limits = screen.Limits(settings.max_message_bytes, settings.max_message_depth)
        try:
            refusal = screen.refuse_raw(
                message.body,
                message.content_type,
                message.content_encoding,
                message.headers,
                limits,
            )
        except Exception:  # the reason is only a better label; undecodable will do
            return None
        if refusal is None or refusal.reason not in ("too_large", "content_not_allowed"):
            return None
        return refusal

    def on_unknown_message(self, body: Any, message: Message) -> None:
        log.warning("message without a task header dead-lettered")
        self._dead_letter(message, "not_a_task", "message has no Celery task header")

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        name = _task_name(message)
        log.warning("unknown task dead-lettered", task_name=name)
        self._dead_letter(message, "unknown_task", f"no task named {name!r} in this worker")

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        log.warning("invalid task message dead-lettered", error=str(exc))
        self._dead_letter(message, "invalid_task_message", f"{type(exc).__name__}: {exc}")


def _forget_inflight(message: Message) -> None:
    """A message the reliable fetch recorded in flight (worker/shell/fetch.lua) and that no
    task will ever commit: its entry goes now, not when it turns stale ten minutes later
    (it would hold its order's deadlines back until then)."""
    from worker.runtime import store  # the runtime imports the app: import late

    order = (message.properties or {}).get(INFLIGHT_PROPERTY)
    task_id = (message.headers or {}).get("id")
    if not order or not isinstance(task_id, str):
        return
    try:
        store().clear_inflight(str(order), task_id)
    except Exception:  # stale later: the gate ignores it then
        log.warning("could not clear the in-flight entry of a refused message", exc_info=True)


def _ignore_inbound_limits(headers: dict[str, Any]) -> None:
    if headers.get("task") not in topology.INBOUND_TASKS:
        return  # the worker's own tasks: an expired tick is meant to be dropped
    for name in IGNORED_INBOUND_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        headers[name] = None
        # Celery's send_task writes timelimit [null, null] on every task: nothing ignored.
        if not (isinstance(value, list | tuple) and all(part is None for part in value)):
            log.info("header ignored on an inbound task", header=name)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _task_name(message: Message) -> str | None:
    headers = message.headers
    task = headers.get("task") if isinstance(headers, dict) else None
    return task if isinstance(task, str) else None
