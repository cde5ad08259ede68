"""The functional core: decide(state, input, now, policy) -> Decision.

Imports the standard library, schemas/ and pure libraries (holidays) only: no Redis, no
Celery, no clock, no environment.
"""
