"""structlog logs; worker/shell/hooks.py binds each task's id and name on every line.

Lines are JSON when stderr is not a terminal (files, containers, log shippers) and
rendered for people on a terminal; `AFTERSALES_LOG_FORMAT=json|console|auto` decides
otherwise. The beat tick runs every second and mostly finds nothing to do: Celery's own
lines about it (sent, received, succeeded) are shown only at DEBUG, so an idle worker is
silent. Hooks never fail a task: an exception inside one is logged and swallowed. E-mail
addresses are redacted from every log line, whatever logged them. Celery's `--loglevel`
applies to these lines as to its own (`follow_celery_level`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.channels import TICK_TASK

EMAIL_RE = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]*\.[^\s@'\"<>(),;:]*")
"""What looks like an e-mail address, even one cut short by Celery's 1024-character repr
("jane@exa..."): a dot after the "@" is enough. Node names like celery@host stay."""


def _redacted(found: re.Match[str]) -> str:
    # Celery prints broker URLs with the password masked, "redis://:**@127.0.0.1:6379":
    # an address needs a letter or digit before its "@".
    local = found.group().partition("@")[0]
    return "<redacted-email>" if any(c.isalnum() for c in local) else found.group()


def redact(text: str) -> str:
    return EMAIL_RE.sub(_redacted, text)


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


QUIET_TASKS = frozenset({TICK_TASK})
"""Periodic housekeeping: Celery's per-run lines about them are noise unless at DEBUG."""

LOG_FORMATS = ("auto", "json", "console")


class QuietTicksFilter(logging.Filter):
    """Drops Celery's "Sending due task", "received" and "succeeded" lines of QUIET_TASKS.

    Celery logs those with the task name in the record's arguments: a dict for the
    worker's lines (`Task %(name)s[%(id)s] received`), a tuple for beat's. Warnings and
    failures of the same tasks always pass, and everything passes at DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or logging.getLogger().level <= logging.DEBUG:
            return True
        args = record.args
        if isinstance(args, dict):
            return args.get("name") not in QUIET_TASKS
        if isinstance(args, tuple) and record.name == "celery.beat":
            return not any(arg in QUIET_TASKS for arg in args if isinstance(arg, str))
        return True


def log_format(value: str | None = None, stream: Any = None) -> str:
    """`json` or `console`: the setting (env `AFTERSALES_LOG_FORMAT`), `auto` by the stream."""
    chosen = value if value is not None else os.environ.get("AFTERSALES_LOG_FORMAT", "auto")
    chosen = chosen.strip().lower() or "auto"
    if chosen not in LOG_FORMATS:
        raise SystemExit(
            f"aftersales: cannot start: AFTERSALES_LOG_FORMAT={chosen!r}; "
            f"expected one of {', '.join(LOG_FORMATS)}"
        )
    if chosen != "auto":
        return chosen
    isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.processors.JSONRenderer()


_level = logging.INFO
"""The lowest level written by this project's own loggers: `set_level`, which follows
Celery's `--loglevel` (`follow_celery_level`)."""

_EVERY_LEVEL: Any = structlog.make_filtering_bound_logger(logging.NOTSET)

_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _gated(name: str, level: int) -> Callable[..., Any]:
    inner = getattr(_EVERY_LEVEL, name)

    def method(self: Any, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if level < _level:
            return None
        return inner(self, event, *args, **kw)

    method.__name__ = name
    return method


def _gated_async(name: str, level: int) -> Callable[..., Any]:
    inner = getattr(_EVERY_LEVEL, f"a{name}")

    async def method(self: Any, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if level < _level:
            return None
        return await inner(self, event, *args, **kw)

    method.__name__ = f"a{name}"
    return method


def _log(self: Any, level: int, event: str, *args: Any, **kw: Any) -> Any:
    if level < _level:
        return None
    return _EVERY_LEVEL.log(self, level, event, *args, **kw)


async def _alog(self: Any, level: int, event: str, *args: Any, **kw: Any) -> Any:
    if level < _level:
        return None
    return await _EVERY_LEVEL.alog(self, level, event, *args, **kw)


LevelBoundLogger: Any = type(
    "LevelBoundLogger",
    (_EVERY_LEVEL,),
    {
        **{name: _gated(name, level) for name, level in _METHOD_LEVELS.items()},
        **{f"a{name}": _gated_async(name, level) for name, level in _METHOD_LEVELS.items()},
        "log": _log,
        "alog": _alog,
        "is_enabled_for": lambda self, level: level >= _level,
        "get_effective_level": lambda self: _level,
    },
)
"""structlog's filtering logger whose level is read on each call, not fixed when the
logger was first used: loggers made and cached before Celery read `--loglevel` obey it
too. A line below the level costs a comparison."""


def set_level(level: int) -> None:
    """This project's lines below `level` are dropped (Celery's own follow the root
    logger's level, which Celery sets)."""
    global _level
    _level = level


def follow_celery_level(loglevel: int | str | None = None, **_: Any) -> None:
    """`after_setup_logger` receiver: `celery worker|beat --loglevel L` applies to this
    project's lines too (`deadline fired`, `sweep`, ...), not only to Celery's."""
    if loglevel is None:
        return
    if isinstance(loglevel, str):
        named = logging.getLevelName(loglevel.upper())
        if not isinstance(named, int):
            return
        loglevel = named
    set_level(loglevel)


def follow_worker_options(options: dict[str, Any] | None = None, **_: Any) -> None:
    """`celeryd_init` receiver: the worker's `--loglevel` from its command line, before
    `worker_init` (whose receivers log) and before Celery sets up logging."""
    follow_celery_level((options or {}).get("loglevel"))


_configured = False


def setup_logging(level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    set_level(level)
    fmt = log_format()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The console renderer prints tracebacks itself, readably; JSON needs them as a field.
    exc_info: list[Processor] = [structlog.processors.format_exc_info] if fmt == "json" else []
    structlog.configure(
        processors=[*shared, *exc_info, _redact_event, _renderer(fmt)],
        wrapper_class=LevelBoundLogger,
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(QuietTicksFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=_renderer(fmt),
            foreign_pre_chain=[*shared, *exc_info, _redact_event],
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


def start_task(task_id: str | None, task_name: str | None) -> None:
    """A task's lines from here on carry its id and name, and nothing of the task before:
    Celery's tasks (worker/shell/hooks.py) and each message of an inbound batch."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task_name)


def bind(**values: Any) -> None:
    """Bind order_id, message_id, event_type ... for the rest of this task's lines."""
    structlog.contextvars.bind_contextvars(**values)
