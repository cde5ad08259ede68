"""The beat tick's schedule: every sweep interval, but only when the tick has work.

A tick that finds nothing to arm, re-send or relay costs beat a send and the worker a
task (a fetch, the pool, four reads, an ack) every second for nothing: most of what an
idle worker and beat cost. So when the interval is up, beat first asks Redis, in one
read, whether the tick would do anything (`Scheduler.tick_has_work`, the tick's own
conditions) and sends it only then, or when `AFTERSALES_IDLE_TICK_EVERY` (30 s) has passed
since the last one: a belt to the braces. If the read fails, the tick is sent. After a
read that found nothing, the next comes IDLE_PROBE_EVERY intervals later, not one: each
wake-up of an idle beat is most of what it costs (measured with bench/idle.py), and what
the read looks for is rarely that urgent (deadlines are armed a horizon, 60 s, ahead).
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from celery.schedules import schedstate, schedule

from worker.logging import get_logger

log = get_logger("aftersales.beat")

IDLE_PROBE_EVERY = 2
"""Intervals between two reads while the tick has no work. Work that appears meanwhile
waits at most this many intervals for its tick instead of one: a deadline committed due
within that time (one armed 60 s ahead is not delayed), a lost deadline's re-send, the
relay of an event its worker did not confirm. While there is work, the tick is sent
every interval, as before."""


class TickSchedule(schedule):  # type: ignore[misc]  # Celery is untyped
    """Celery's interval schedule (`run_every` = the sweep interval), skipping idle ticks."""

    def __init__(self, *args: Any, idle_every: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_every = idle_every
        self._sent_at = 0.0

    def __reduce__(self) -> tuple[Any, ...]:  # kept in beat's schedule file
        args = (self.run_every, self.relative, self.nowfun)
        return self.__class__, args, {"idle_every": self.idle_every, "_sent_at": 0.0}

    def is_due(self, last_run_at: Any) -> schedstate:
        state = super().is_due(last_run_at)
        if not state.is_due:
            return state
        if monotonic() - self._sent_at < self.idle_every and not _tick_has_work():
            return schedstate(False, self.seconds * IDLE_PROBE_EVERY)  # asked again then
        self._sent_at = monotonic()
        return state


def _always() -> bool:
    return True


work_probe: Callable[[], bool] = _always
"""Whether the tick has work now; worker/shell/hooks.py sets it (this module is imported
by the app, so it cannot import the runtime). Left as is, every tick is sent."""


def _tick_has_work() -> bool:
    try:
        return work_probe()
    except Exception:  # Redis away: send the tick; it retries and logs on its own
        log.warning("cannot tell whether the tick has work; sending it", exc_info=True)
        return True
