"""`aftersales health`: probes for a supervisor, with an exit status.

- liveness: this host's worker answers on its /metrics port and is not stalled (messages
  wait in `aftersales.inbound` while it has fetched nothing for AFTERSALES_STALL_AFTER);
- readiness: that, and the state's Redis and the broker answer;
- all (the default): that, and beat's tick has run lately (read from Redis).

Each check prints one line (`ok` or `FAIL`, its name, what it saw); the status is 0 when
every check passed, 1 otherwise (docs/observability.md).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kombu.connection import Connection
from prometheus_client.parser import text_string_to_metric_families

from schemas import channels
from worker.adapters.figures import read_figures
from worker.adapters.redis_store import RedisStore
from worker.adapters.state_client import connect
from worker.settings import STALL_AFTER, Settings

PROBES = ("liveness", "readiness", "all")
TIMEOUT = 3.0
"""Seconds each check may take: a probe must answer before its supervisor gives up."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def run_checks(settings: Settings, probe: str, beat_within: float) -> list[Check]:
    chosen: list[tuple[str, Callable[[], Check]]] = [("worker", lambda: consuming(settings))]
    if probe in ("readiness", "all"):
        chosen += [("redis", lambda: redis_up(settings)), ("broker", lambda: broker_up(settings))]
    if probe == "all":
        chosen.append(("beat", lambda: beat_ticking(settings, beat_within)))
    return [_guarded(name, check) for name, check in chosen]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # unreachable, refused, timed out: the probe fails, saying so
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def consuming(settings: Settings) -> Check:
    if settings.metrics_port is None:
        return Check("worker", True, "AFTERSALES_METRICS_PORT is off: not checked")
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            text = response.read().decode()
    except OSError as exc:
        return Check("worker", False, f"{url} does not answer ({exc})")
    samples = {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    waiting = samples.get("aftersales_queue_messages" + str([("queue", channels.INBOUND)]), 0.0)
    last = samples.get("aftersales_worker_last_fetch_timestamp_seconds[]") or samples.get(
        "process_start_time_seconds[]", 0.0
    )
    quiet = time.time() - last
    stall_after = (settings.stall_after or STALL_AFTER).total_seconds()
    if waiting > 0 and quiet > stall_after:
        return Check("worker", False, f"stalled: {waiting:.0f} waiting, no fetch for {quiet:.0f} s")
    return Check("worker", True, f"consuming ({waiting:.0f} waiting, last fetch {quiet:.0f} s ago)")


def redis_up(settings: Settings) -> Check:
    client = connect(settings)
    try:
        client.ping()
    finally:
        client.close()
    return Check("redis", True, "answers")


def broker_up(settings: Settings) -> Check:
    with Connection(settings.broker_url, connect_timeout=TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT)
    return Check("broker", True, "answers")


def beat_ticking(settings: Settings, within: float) -> Check:
    store = RedisStore(connect(settings))
    try:
        ticked = read_figures(store, datetime.now(UTC)).beat_ticked
    finally:
        store.client.close()
    if ticked is None:
        return Check("beat", False, "no tick has ever run")
    age = time.time() - ticked
    if age > within:
        return Check("beat", False, f"last tick {age:.0f} s ago (more than {within:g} s)")
    return Check("beat", True, f"last tick {age:.1f} s ago")
