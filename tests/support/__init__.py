"""Helpers behind the fixtures of tests/conftest.py: real processes and bare wire clients.

Nothing here imports the project's worker, tasks or Celery app: integration tests talk
to the worker the way a producer or downstream consumer in another language would.
"""
