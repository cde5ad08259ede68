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
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from tests.chaos.compare import Comparison, Key, Seen, compare, event_key
from tests.chaos.oracle import Outcome
from tests.chaos.workload import Script, expected, generate, task_of
from tests.support.processes import (
    WORKER_QUEUES,
    CeleryProcess,
    ping,
    spawn,
    unique_node,
    worker_args,
)
from tests.support.redis_restart import restart_embedded_redis
from worker.embedded_redis import EmbeddedRedis, free_port, start_embedded_redis

INBOUND = "aftersales.inbound"
EVENTS = "aftersales.events"
DEAD_LETTER = "aftersales.dead_letter"
# A broken connection (Redis restarting) is retried this long before the run gives up.
RECONNECT_FOR = 60.0
# Messages sent per loop turn, so that events are drained and kills happen meanwhile.
SEND_BATCH = 200


@dataclass
class ChaosConfig:
    orders: int = 300
    seed: int = 1
    lead: float = 20.0  # deadlines meant to fire during the run: due from now + lead ...
    spread: float = 40.0  # ... to now + lead + spread (seconds)
    worker_kill_every: float = 0.0  # 0: one kill only; else every so many seconds
    first_kill: float = 6.0  # seconds after sending starts
    beat_kill: float = 10.0
    redis_restart: float = 16.0
    redis_hard: bool = True  # kill -9 (else SIGTERM)
    concurrency: int = 2
    timeout: float = 170.0  # overall, from the start of sending
    quiet: float = 45.0  # stop when nothing new arrived for this long (past every due)
    settle: float = 5.0  # after all expected arrived, keep listening for duplicates
    visibility: str = "PT30S"
    horizon: str = "PT10S"
    with_1_1: bool = False
    log: Callable[[str], None] = print


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
            f"{len(flows)} flows{' (with 1.1)' if c.with_1_1 else ''}; "
            f"kill -9: worker x{self.kills['worker']}, beat x{self.kills['beat']}; "
            f"redis restart x{self.kills['redis']} "
            f"({'kill -9' if c.redis_hard else 'SIGTERM'}); {self.elapsed:.0f} s",
            *self.comparison.summary(),
            f"dead letters {self.dead_letters}",
            f"crashed    {len(self.crashes)} processes exited by themselves (restarted)",
            *self.crashes,
        ]
        return lines + self.comparison.details() + self.evidence


class Processes:
    """Two workers and beat on one Redis; kill -9 and restart with fresh node names."""

    def __init__(self, workdir: Path, url: str, config: ChaosConfig) -> None:
        self.workdir, self.url, self.config = workdir, url, config
        self.env = {
            k: v for k, v in os.environ.items()
            if not k.startswith("AFTERSALES_") and k != "PYTHONWARNINGS"
        }
        self.env.update(
            AFTERSALES_REDIS_URL=url, PYTHONUNBUFFERED="1",
            AFTERSALES_LABEL_DIR=str(workdir / "labels"),
            AFTERSALES_VISIBILITY_TIMEOUT=config.visibility,
            AFTERSALES_DEADLINE_HORIZON=config.horizon,
        )
        self.workers: list[CeleryProcess] = []
        self.beat: CeleryProcess | None = None
        self.all: list[CeleryProcess] = []

    def start_worker(self) -> CeleryProcess:
        node_arg, node = unique_node("chaos")
        cwd = self.workdir / node.split("@")[0]
        cwd.mkdir()
        args = worker_args(node_arg, self.config.concurrency, "prefork", "INFO", WORKER_QUEUES)
        handle = spawn("worker", args, self.env, cwd, cwd / "worker.log", node)
        self.workers.append(handle)
        self.all.append(handle)
        return handle

    def start_beat(self) -> CeleryProcess:
        cwd = self.workdir / f"beat-{uuid.uuid4().hex[:6]}"
        cwd.mkdir()
        args = ["beat", "--loglevel", "INFO", "--schedule", str(cwd / "celerybeat-schedule")]
        self.beat = spawn("beat", args, self.env, cwd, cwd / "beat.log")
        self.all.append(self.beat)
        return self.beat

    def ready(self, handle: CeleryProcess) -> bool:
        with contextlib.suppress(Exception):
            return bool(handle.name) and ping(self.url, str(handle.name))
        return False

    def kill_worker(self) -> str | None:
        """kill -9 the oldest worker if the other one answers; start a new one."""
        victim, other = self.workers[0], self.workers[-1]
        if not self.ready(other):
            return None
        victim.kill9(whole_group=True)
        self.workers.remove(victim)
        self.start_worker()
        return str(victim.name)

    def kill_beat(self) -> None:
        assert self.beat is not None
        self.beat.kill9(whole_group=True)
        self.start_beat()

    def replace_dead(self) -> list[str]:
        """Restart, as a supervisor would, any worker or beat that exited by itself; say
        which and why (the last error line of its log)."""
        died = []
        for handle in [*self.workers, *([self.beat] if self.beat else [])]:
            if handle.alive():
                continue
            errors = [line for line in handle.log_text().splitlines()
                      if "Unrecoverable" in line or "Error" in line]
            died.append(f"{handle.kind} {handle.name or ''} exited {handle.process.returncode}: "
                        f"{(errors or ['(no error logged)'])[-1][:300]}")
            if handle is self.beat:
                self.start_beat()
            else:
                self.workers.remove(handle)
                self.start_worker()
        return died

    def stop(self) -> None:
        for handle in reversed(self.all):
            handle.stop()


class Producer:
    """A bare Celery client; a send that fails while Redis restarts is retried (a message
    id seen twice is applied once, so a retry after an unseen success is harmless)."""

    def __init__(self, url: str) -> None:
        self.celery = Celery("chaos-producer", broker=url, set_as_current=False)
        self.celery.conf.update(task_serializer="json", accept_content=["json"])

    def send(self, message: dict[str, Any]) -> None:
        deadline = time.monotonic() + RECONNECT_FOR
        while True:
            try:
                self.celery.send_task(task_of(message), args=[message], queue=INBOUND,
                                      serializer="json")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.celery.close()


class Consumer:
    """A downstream queue bound to `aftersales.events` with `#`; reconnects after a
    Redis restart (the queue and its binding are in Redis, kept by the AOF)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"chaos.events.{uuid.uuid4().hex[:8]}"
        self.exchange = Exchange(EVENTS, type="topic", durable=True)
        self.queue = Queue(self.name, self.exchange, routing_key="#", durable=True)
        self.connection: Connection | None = None
        self.bound: Any = None
        self.broken_since: float | None = None
        self._connect()

    def _connect(self) -> None:
        self.connection = Connection(self.url)
        self.bound = self.queue(self.connection.default_channel)
        self.bound.declare()

    def drain(self, limit: int = 2000) -> Iterator[dict[str, Any]]:
        try:
            if self.connection is None:
                self._connect()
            for _ in range(limit):
                message = self.bound.get(no_ack=True)
                if message is None:
                    break
                yield json.loads(message.body)
            self.broken_since = None
        except Exception:
            with contextlib.suppress(Exception):
                if self.connection is not None:
                    self.connection.release()
            self.connection = None
            self.broken_since = self.broken_since or time.monotonic()
            if time.monotonic() - self.broken_since > RECONNECT_FOR:
                raise

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.bound.delete()
            self.connection.release()


class Sender:
    """Sends each order's stages: stage 0 at once, stage i once its gate keys are seen."""

    def __init__(self, scripts: list[Script], rng: random.Random) -> None:
        self.rng = rng
        self.scripts = {s.order_id: s for s in scripts}
        self.next_stage = dict.fromkeys(self.scripts, 0)
        self.ready: list[dict[str, Any]] = []
        self.waiting: dict[Key, set[str]] = defaultdict(set)
        self.seen: set[Key] = set()
        self.sent_at: dict[str, float] = {}
        order = list(self.scripts)
        rng.shuffle(order)
        for order_id in order:
            self._queue(order_id)

    def _queue(self, order_id: str) -> None:
        script, index = self.scripts[order_id], self.next_stage[order_id]
        if index >= len(script.stages):
            return
        missing = [k for k in script.gates[index] if k not in self.seen]
        if missing:
            for key in missing:
                self.waiting[key].add(order_id)
            return
        messages = list(script.stages[index])
        self.rng.shuffle(messages)  # out of order within the stage
        self.ready.extend(messages)
        self.next_stage[order_id] = index + 1
        self._queue(order_id)

    def saw(self, key: Key) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        for order_id in self.waiting.pop(key, ()):
            self._queue(order_id)

    def take(self, count: int) -> list[dict[str, Any]]:
        batch, self.ready = self.ready[:count], self.ready[count:]
        now = time.time()
        for message in batch:
            self.sent_at[message["order_id"]] = now
        return batch

    @property
    def done(self) -> bool:
        return not self.ready and all(
            self.next_stage[o] >= len(s.stages) for o, s in self.scripts.items()
        )


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
            say(f"chaos: {elapsed:.0f} s redis restarted "
                f"({'kill -9' if c.redis_hard else 'SIGTERM'})")
        for death in self.processes.replace_dead():
            run.crashes.append(f"{elapsed:.0f} s {death}")
            say(f"chaos: {elapsed:.0f} s CRASHED (restarted): {death}")


def _drive(run: Run, c: ChaosConfig, processes: Processes, producer: Producer,
           consumer: Consumer, server: EmbeddedRedis) -> EmbeddedRedis:
    start = time.time()
    now = datetime.fromtimestamp(start, UTC).replace(microsecond=0)
    run.scripts = generate(c.orders, c.seed, now, timedelta(seconds=c.spread),
                           timedelta(seconds=c.lead), c.with_1_1)
    horizon = now + timedelta(seconds=c.lead + c.spread + 1)
    outcomes: list[Outcome] = [o for s in run.scripts for o in expected(s, horizon)]
    required = {o.key for o in outcomes if not o.optional}
    aliases = {m: ref for s in run.scripts for m, ref in s.aliases.items()}
    sender = Sender(run.scripts, random.Random(c.seed))
    chaos = Chaos(run, processes, server)
    seen: dict[Key, Seen] = {}
    last_change, complete_at = time.monotonic(), None
    c.log(f"chaos: sending {c.orders} orders ({sum(len(s.messages) for s in run.scripts)} "
          f"messages); {len(required)} outcomes expected")
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
            c.log(f"chaos: stopped waiting after {elapsed:.0f} s "
                  f"({'quiet' if quiet else 'timeout'}); {len(required - seen.keys())} "
                  "expected outcomes not seen")
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
        done = subprocess.run([str(command), "order", order_id], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        lines.append(f"--- aftersales order {order_id}\n{done.stdout}{done.stderr}")
    return lines
