"""The dead-letter queue's messages: their body, and the `reason` each one gives.

Operators filter and replay on the reason (docs/input-safety.md, "Reason codes", explains
each), so a reason is never renamed or reused for another meaning; a new way to refuse
gets a new reason. The same discipline as the rejection codes (worker/rules/codes.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from schemas.types import format_timestamp

DeadLetterReason = Literal[
    "undeliverable",
    "not_a_task",
    "too_large",
    "content_not_allowed",
    "undecodable",
    "invalid_headers",
    "too_deep",
    "invalid_unicode",
    "invalid_task_message",
    "unknown_task",
    "unprocessable",
    "invalid_message",
    "message_id_reused",
    "order_expired",
    "held_too_long",
    "processing_failed",
    "label_failed",
]
"""Every dead-letter reason, in the order docs/input-safety.md explains them."""

DEAD_LETTER_REASONS: tuple[DeadLetterReason, ...] = get_args(DeadLetterReason)


def dead_letter_body(
    task: str | None,
    original: Any,
    error: str,
    reason: DeadLetterReason,
    now: datetime,
    errors: list[dict[str, Any]] | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """The body of every dead-letter message, whoever writes it (the tasks and the consumer
    through worker/runtime.py, the transport, a commit's outbox): the original body, and
    why it was refused (`reason`, one of DeadLetterReason; `error`, in words)."""
    return {
        "task": task,
        "reason": reason,
        "error": error,
        "errors": errors or [],
        "original": original,
        "content_type": content_type,
        "dead_lettered_at": format_timestamp(now),
    }


__all__ = ["DEAD_LETTER_REASONS", "DeadLetterReason", "dead_letter_body"]
