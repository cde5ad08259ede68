"""`task(...)`: Celery's `app.task` decorator with a type mypy can check.

Celery ships no type information, so `@app.task(...)` is an untyped decorator to mypy
and `mypy --strict` refuses it. This does the same registration and says what it returns:
a Celery task (typed `Any` here, as Celery is untyped), called like the function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from worker.celery import app


def task(**options: Any) -> Callable[[Callable[..., Any]], Task]:
    def register(run: Callable[..., Any]) -> Task:
        registered: Task = app.task(run, **options)
        return registered

    return register
