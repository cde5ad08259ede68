"""A typed way to hook a function on a Celery signal.

Celery ships no type information, so `@task_prerun.connect` is an untyped decorator to
mypy and would erase the hook's signature. `receiver(signal)` does the same connection
(`Signal.connect(hook)`, weak reference, no sender filter) and hands the hook back as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

Hook = TypeVar("Hook", bound=Callable[..., None])


class Signal(Protocol):
    """The part of `celery.utils.dispatch.Signal` used here."""

    def connect(self, receiver: Callable[..., None], /) -> Any: ...


def receiver(signal: Signal) -> Callable[[Hook], Hook]:
    def register(hook: Hook) -> Hook:
        signal.connect(hook)
        return hook

    return register
