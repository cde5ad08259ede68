"""The stalled-consumer watchdog: a worker that stops fetching while inbound messages wait
exits non-zero, so its supervisor (systemd, Kubernetes, `aftersales run`'s operator, a
compose restart policy) starts a fresh one.

The failure it exists for is silent: after a broker reconnect a Celery worker may go on
answering pings and beating while its consumer never fetches again, and logs nothing
(celery/celery#8030, #10205, #10302). Reconnecting from inside a consumer in that state is
what failed, so the watchdog does not try: it asks for a warm shutdown (running tasks
finish; messages taken and not acked go back: reliable fetch on Redis, the channel's close
on RabbitMQ) and, if the event loop does not even act on that, ends the process.

A worker is stalled when, for `stall_after`, messages have waited in `aftersales.inbound`
while it had a free process and fetched nothing. Busy (every process running a task) or
idle (nothing waiting) is not stalled. The queue is read only after a quiet spell, never
per message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.logging import get_logger

log = get_logger("aftersales.watchdog")

EXIT_STALLED = 75
"""EX_TEMPFAIL: "try again later": the supervisor restarts the worker."""

HARD_EXIT_AFTER = 30.0
"""Seconds a warm shutdown may take before the process is ended: a consumer stalled in a
blocked event loop would never act on the request."""


@dataclass
class Watchdog:
    stall_after: float  # seconds
    waiting: Callable[[], int]  # messages in aftersales.inbound
    busy: Callable[[], bool]  # every pool process has a task
    clock: Callable[[], float] = time.monotonic
    last_fetch: float = field(init=False)
    waiting_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.last_fetch = self.clock()  # start-up counts as a fetch

    @property
    def period(self) -> float:
        return self.stall_after / 4

    def fetched(self) -> None:
        self.last_fetch = self.clock()

    def check(self) -> bool:
        """One look; True when the consumer is stalled."""
        now = self.clock()
        if self.waiting_since is not None and self.last_fetch >= self.waiting_since:
            self.waiting_since = None  # it fetched since messages were seen waiting
        if now - self.last_fetch < self.period or self.busy() or self.waiting() == 0:
            self.waiting_since = None
            return False
        if self.waiting_since is None:
            self.waiting_since = now
        return now - self.waiting_since >= self.stall_after


def run(dog: Watchdog, stop: Callable[[int], None]) -> threading.Thread:
    """Check every `dog.period` in a daemon thread; on a stall, `stop(EXIT_STALLED)`, and
    end the process if it is still here HARD_EXIT_AFTER later."""

    def loop() -> None:
        while True:
            time.sleep(dog.period)
            try:
                stalled = dog.check()
            except Exception:  # the broker away: not a stall of ours; look again later
                log.warning("watchdog could not read the queue", exc_info=True)
                continue
            if stalled:
                break
        log.error(
            "consumer stalled: no fetch while messages wait; exiting for a restart",
            stalled_for_s=round(time.monotonic() - dog.last_fetch, 1),
            exit_code=EXIT_STALLED,
        )
        stop(EXIT_STALLED)
        time.sleep(HARD_EXIT_AFTER)
        log.error("warm shutdown did not happen; ending the process", exit_code=EXIT_STALLED)
        os._exit(EXIT_STALLED)

    thread = threading.Thread(target=loop, name="aftersales-watchdog", daemon=True)
    thread.start()
    return thread
