"""The chaos run's moving parts: its configuration, the worker and beat processes
(killed and replaced), a bare producer and a downstream consumer that survive a Redis
restart, and the sender that releases each order's stages as their gates are seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Connection, Exchange, Queue

from tests.chaos.compare import Key
from tests.chaos.workload import Script, task_of
from tests.support.processes import (
    WORKER_QUEUES,
    CeleryProcess,
    ping,
    spawn,
    unique_node,
    worker_args,
)

INBOUND = "aftersales.inbound"
EVENTS = "aftersales.events"
# A broken connection (Redis restarting) is retried this long before the run gives up.
RECONNECT_FOR = 60.0


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
    log: Callable[[str], None] = print


class Processes:
    """Two workers and beat on one Redis; kill -9 and restart with fresh node names."""

    def __init__(self, workdir: Path, url: str, config: ChaosConfig) -> None:
        self.workdir, self.url, self.config = workdir, url, config
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AFTERSALES_") and k != "PYTHONWARNINGS"
        }
        self.env.update(
            AFTERSALES_REDIS_URL=url,
            PYTHONUNBUFFERED="1",
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
            errors = [
                line
                for line in handle.log_text().splitlines()
                if "Unrecoverable" in line or "Error" in line
            ]
            died.append(
                f"{handle.kind} {handle.name or ''} exited {handle.process.returncode}: "
                f"{(errors or ['(no error logged)'])[-1][:300]}"
            )
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
                self.celery.send_task(
                    task_of(message), args=[message], queue=INBOUND, serializer="json"
                )
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
