"""One error hierarchy: permanent errors dead-letter at once,
transient ones retry with capped, jittered backoff."""

from __future__ import annotations

import random

import redis
from kombu.exceptions import OperationalError

from worker.service import ConcurrencyExhausted

TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
             redis.exceptions.BusyLoadingError, OperationalError, ConcurrencyExhausted,
             ConnectionError, TimeoutError)
"""Failures of the infrastructure, not of the message: retried, never dead-lettered."""

BACKOFF_CAP = 60.0
"""Longest wait between retries (s): a Redis restart takes seconds, not minutes."""


def backoff(retries: int) -> float:
    """Full-jitter exponential backoff: 0.5 s, 1 s, 2 s ... capped."""
    return random.uniform(0, min(BACKOFF_CAP, 0.5 * 2**retries))
