"""structlog JSON logs, and the Celery signal hooks that bind context on every line.

Hooks never fail a task: an exception inside one is logged and swallowed. E-mail
addresses are redacted from every log line, whatever logged them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.signals import receiver

EMAIL_RE = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]*\.[^\s@'\"<>(),;:]*")
"""What looks like an e-mail address, even one cut short by Celery's 1024-character repr
("jane@exa..."): a dot after the "@" is enough. Node names like celery@host stay."""


def redact(text: str) -> str:
    return EMAIL_RE.sub("<redacted-email>", text)


def _redact_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and "@" in value:
            event_dict[key] = redact(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """Applied to the stdlib handler: Celery's own lines (task received, failure with args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = redact(message), None
        return True


_configured = False


def setup_logging(level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            _redact_event,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[*shared, _redact_event],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str = "aftersales") -> Any:
    return structlog.get_logger(name)


def never_fails(hook: Callable[..., None]) -> Callable[..., None]:
    """A cross-cutting hook logs its own failure instead of failing the task."""

    @wraps(hook)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            get_logger().exception("signal hook failed", hook=hook.__name__)

    return guarded


@receiver(task_prerun)
@never_fails
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@receiver(task_postrun)
@never_fails
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


def bind(**values: Any) -> None:
    """Bind order_id, message_id, event_type ... for the rest of this task's lines."""
    structlog.contextvars.bind_contextvars(**values)
