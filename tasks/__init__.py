"""Celery task entry points: parse, call the service, choose retry or dead-letter.

Each is a few lines with no business branches; `worker.celery` includes this package.
"""

from tasks import deadlines, inbound, labels

__all__ = ["deadlines", "inbound", "labels"]
