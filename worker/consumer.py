"""A Celery consumer that dead-letters what it cannot even turn into a task.

Celery's default is to log and ack (or reject) undecodable messages, pickled bodies and
unknown task names: the message is gone. The contract says bad input is never dropped,
so these land in `aftersales.dead_letter` with the original body and the error.
"""

from __future__ import annotations

import base64
from typing import Any

from celery.worker.consumer import Consumer
from kombu.message import Message

from worker.logging import get_logger

log = get_logger("aftersales.consumer")


def _original(message: Message) -> dict[str, Any]:
    body = message.body
    if isinstance(body, bytes | bytearray):
        try:
            text: str | None = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            text = None
        raw = {"text": text} if text is not None else {
            "base64": base64.b64encode(bytes(body)).decode("ascii")
        }
    else:
        raw = {"text": str(body)}
    headers = message.headers or {}
    return {
        **raw,
        "headers": {k: headers[k] for k in ("id", "task", "lang") if k in headers},
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
    }


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]
    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        from worker.runtime import dead_letter  # the runtime imports the app: import late

        headers = message.headers or {}
        try:
            dead_letter(
                task=headers.get("task"),
                original=_original(message),
                error=error,
                reason=reason,
                content_type=message.content_type,
            )
        except Exception:
            # Broker down: give the message back rather than lose it.
            log.exception("dead-lettering failed; message returned to the queue")
            message.reject_log_error(log, self.connection_errors, requeue=True)
            return
        message.ack_log_error(log, self.connection_errors)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        log.warning("undecodable message dead-lettered", error=str(exc),
                    content_type=message.content_type)
        self._dead_letter(message, "undecodable", f"{type(exc).__name__}: {exc}")

    def on_unknown_message(self, body: Any, message: Message) -> None:
        log.warning("message without a task header dead-lettered")
        self._dead_letter(message, "not_a_task", "message has no Celery task header")

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        name = (message.headers or {}).get("task")
        log.warning("unknown task dead-lettered", task_name=name)
        self._dead_letter(message, "unknown_task", f"no task named {name!r} in this worker")

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        log.warning("invalid task message dead-lettered", error=str(exc))
        self._dead_letter(message, "invalid_task_message", f"{type(exc).__name__}: {exc}")
