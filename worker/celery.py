"""Lets `celery -A worker` find the app: Celery looks for `worker.app` as an *attribute*
of the package (absent: `worker/__init__.py` imports nothing) and then for a module
`worker.celery`, which is this one."""

from worker.app import app

__all__ = ["app"]
