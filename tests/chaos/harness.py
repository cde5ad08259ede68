"""The chaos run: real Redis, two real workers and beat, the generated workload sent in
stages, kill -9 of workers and beat and a Redis restart during the run, then the
comparison with the oracle. Used by bench/chaos.py and tests/chaos/test_chaos.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from tests.chaos.compare import Comparison, Key, Seen, compare, event_key
from tests.chaos.oracle import Outcome
from tests.chaos.parts import INBOUND, ChaosConfig, Consumer, Processes, Producer, Sender
from tests.chaos.workload import Script, expected, generate
from tests.support.redis_restart import restart_embedded_redis
from worker.cli.embedded_redis import EmbeddedRedis, free_port, start_embedded_redis

__all__ = ["ChaosConfig", "Processes", "Run", "run_chaos"]

DEAD_LETTER = "aftersales.dead_letter"
# Messages sent per loop turn, so that events are drained and kills happen meanwhile.
SEND_BATCH = 200


@dataclass
class Run:
    config: ChaosConfig
    scripts: list[Script] = field(default_factory=list)
    comparison: Comparison | None = None
    kills: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sent: int = 0
    dead_letters: int = 0
    evidence: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)  # processes that exited by themselves
    elapsed: float = 0.0

    def report(self) -> list[str]:
        c = self.config
        assert self.comparison is not None
        flows = sorted({s.flow for s in self.scripts})
        lines = [
            f"chaos: {len(self.scripts)} orders, seed {c.seed}, {self.sent} messages, "
            f"{len(flows)} flows; "
            f"kill -9: worker x{self.kills['worker']}, beat x{self.kills['beat']}; "
            f"redis restart x{self.kills['redis']} "
            f"({'kill -9' if c.redis_hard else 'SIGTERM'}); {self.elapsed:.0f} s",
            *self.comparison.summary(),
            f"dead letters {self.dead_letters}",
            f"crashed    {len(self.crashes)} processes exited by themselves (restarted)",
            *self.crashes,
        ]
        return lines + self.comparison.details() + self.evidence


def run_chaos(config: ChaosConfig, workdir: Path) -> Run:
    run = Run(config)
    server = start_embedded_redis(workdir / "redis", port=free_port())
    processes = Processes(workdir, server.url, config)
    consumer = producer = None
    try:
        consumer = Consumer(server.url)  # bound before anything is published
        producer = Producer(server.url)
        for _ in range(2):
            processes.start_worker()
        processes.start_beat()
        _wait(lambda: all(processes.ready(w) for w in processes.workers), 120, "workers up")
        server = _drive(run, config, processes, producer, consumer, server)
        run.dead_letters = _count_dead_letters(server.url)
        if run.comparison is not None and run.comparison.failed:
            c = run.comparison
            orders = [o.order_id for o in c.missing] + [k[0] for k, _ in c.wrong + c.duplicated]
            run.evidence = [_broker_state(server.url), *_evidence(server.url, orders)]
    finally:
        if producer is not None:
            producer.close()
        if consumer is not None:
            consumer.close()
        processes.stop()
        server.stop()
    return run


class Chaos:
    """The schedule of kills and restarts, and the supervisor that replaces crashed
    processes. A chaos action set after the timeout is off (runs that isolate one)."""

    def __init__(self, run: Run, processes: Processes, server: EmbeddedRedis) -> None:
        c = self.config = run.config
        self.run, self.processes, self.server = run, processes, server
        self.next_kill = c.first_kill if c.first_kill < c.timeout else None
        self.beat_killed = c.beat_kill >= c.timeout
        self.redis_restarted = c.redis_restart >= c.timeout
        self.last_due = c.lead + c.spread

    @property
    def over(self) -> bool:
        return self.next_kill is None and self.beat_killed and self.redis_restarted

    def tick(self, elapsed: float) -> None:
        c, run, say = self.config, self.run, self.config.log
        if self.next_kill is not None and elapsed >= self.next_kill:
            victim = self.processes.kill_worker()
            if victim is None:  # the other worker is not up yet: one is always up
                self.next_kill = elapsed + 1.0
            else:
                run.kills["worker"] += 1
                say(f"chaos: {elapsed:.0f} s kill -9 worker {victim}")
                more = c.worker_kill_every and elapsed < self.last_due
                self.next_kill = self.next_kill + c.worker_kill_every if more else None
        if not self.beat_killed and elapsed >= c.beat_kill:
            self.processes.kill_beat()
            run.kills["beat"] += 1
            self.beat_killed = True
            say(f"chaos: {elapsed:.0f} s kill -9 beat")
        if not self.redis_restarted and elapsed >= c.redis_restart:
            self.server = restart_embedded_redis(self.server, hard=c.redis_hard)
            run.kills["redis"] += 1
            self.redis_restarted = True
            say(
                f"chaos: {elapsed:.0f} s redis restarted "
                f"({'kill -9' if c.redis_hard else 'SIGTERM'})"
            )
        for death in self.processes.replace_dead():
            run.crashes.append(f"{elapsed:.0f} s {death}")
            say(f"chaos: {elapsed:.0f} s CRASHED (restarted): {death}")


def _drive(
    run: Run,
    c: ChaosConfig,
    processes: Processes,
    producer: Producer,
    consumer: Consumer,
    server: EmbeddedRedis,
) -> EmbeddedRedis:
    start = time.time()
    now = datetime.fromtimestamp(start, UTC).replace(microsecond=0)
    run.scripts = generate(
        c.orders, c.seed, now, timedelta(seconds=c.spread), timedelta(seconds=c.lead)
    )
    horizon = now + timedelta(seconds=c.lead + c.spread + 1)
    outcomes: list[Outcome] = [o for s in run.scripts for o in expected(s, horizon)]
    required = {o.key for o in outcomes if not o.optional}
    aliases = {m: ref for s in run.scripts for m, ref in s.aliases.items()}
    sender = Sender(run.scripts, random.Random(c.seed))
    chaos = Chaos(run, processes, server)
    seen: dict[Key, Seen] = {}
    last_change, complete_at = time.monotonic(), None
    c.log(
        f"chaos: sending {c.orders} orders ({sum(len(s.messages) for s in run.scripts)} "
        f"messages); {len(required)} outcomes expected"
    )
    while True:
        elapsed = time.time() - start
        for message in sender.take(SEND_BATCH):
            producer.send(message)
            run.sent += 1
        for event in consumer.drain():
            if _record(seen, event_key(event, aliases), event):
                last_change = time.monotonic()
            sender.saw(event_key(event, aliases))
        chaos.tick(elapsed)
        if sender.done and required <= seen.keys() and elapsed > chaos.last_due and chaos.over:
            complete_at = complete_at or time.monotonic()
            if time.monotonic() - complete_at > c.settle:
                break
        quiet = time.monotonic() - last_change > c.quiet and elapsed > chaos.last_due + c.quiet
        if (quiet and chaos.over) or elapsed > c.timeout:
            c.log(
                f"chaos: stopped waiting after {elapsed:.0f} s "
                f"({'quiet' if quiet else 'timeout'}); {len(required - seen.keys())} "
                "expected outcomes not seen"
            )
            break
        if not sender.ready:
            time.sleep(0.05)
    run.elapsed = time.time() - start
    run.comparison = compare(outcomes, seen, sender.sent_at, start)
    return chaos.server


def _record(seen: dict[Key, Seen], key: Key, event: dict[str, Any]) -> bool:
    """Keep one copy per CloudEvent id; True when the id is new."""
    entry = seen.setdefault(key, Seen(first_arrival=time.time()))
    entry.copies += 1
    event_id = str(event.get("id"))
    if event_id in entry.ids:
        return False
    entry.ids[event_id] = event
    return True


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _count_dead_letters(url: str) -> int:
    with contextlib.suppress(Exception), redis.Redis.from_url(url) as client:
        return int(client.llen(DEAD_LETTER))
    return -1


def _broker_state(url: str) -> str:
    """kombu's Redis bookkeeping of taken, unacknowledged messages (what a killed worker
    held): how many, how old, by queue, and whether its restore mutex is held."""
    with redis.Redis.from_url(url) as client:
        now = time.time()
        ages = [now - score for _, score in client.zrange("unacked_index", 0, -1, withscores=True)]
        queues: dict[str, int] = defaultdict(int)
        for raw in client.hvals("unacked"):
            with contextlib.suppress(Exception):
                queues[json.loads(raw)[2]] += 1
        return (
            f"broker: {len(ages)} unacked (oldest {max(ages, default=0):.0f} s; by routing key "
            f"{dict(queues)}), unacked_mutex ttl {client.ttl('unacked_mutex')}, "
            f"inbound queued {client.llen(INBOUND)}, "
            f"deadlines scheduled {client.zcard('aftersales:deadlines')} "
            f"armed {client.zcard('aftersales:deadlines:armed')}"
        )


def _evidence(url: str, orders: list[str], limit: int = 3) -> list[str]:
    """The worker's own timeline of a few orders whose outcomes differ."""
    lines = []
    command = Path(sys.executable).parent / "aftersales"
    for order_id in sorted(set(orders))[:limit]:
        env = {**os.environ, "AFTERSALES_REDIS_URL": url}
        done = subprocess.run(
            [str(command), "order", order_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines.append(f"--- aftersales order {order_id}\n{done.stdout}{done.stderr}")
    return lines
