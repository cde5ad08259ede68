"""Inbound throughput, latency and idle cost: stock Celery against the real worker (ours).

    .venv/bin/python bench/throughput.py [--n 6000] [--rounds 2] [--quick] [--concurrency 2]
                                         [--workers 1] [--profile] [--latency-rate 100]
                                         [--latency-rounds 1]
                                         [--idle-seconds 30] [--state-url URL] [--broker-url URL]
                                         [--metrics-cost] [--before DIR]

One run, one Redis (embedded, free port; or the servers given), one machine. Both sides
run real `celery worker -P prefork -c N` processes, started once and left idle on a
queue of their own, so starting them is never timed. A round, for each side in turn:

1. N task messages are queued while the worker does not consume them (sending is not
   timed: the producer would otherwise compete with the worker for the CPU);
2. `add_consumer` tells the worker to take that queue; the clock runs from the first
   message taken (an idle consumer looks at an added queue when its wait ends) until the
   queue is empty and nothing is unacked (late acks: acked only after the task ran);
   rate = N / that time, the most the worker drains when it is never starved;
3. `cancel_consumer`, so the next round's messages wait again.

Two baselines, both bench/support/noop_app.py's no-op task: stock = what a user would
otherwise run, Celery's defaults plus task_acks_late and task_reject_on_worker_lost on
kombu's own Redis transport (default prefetch, no task events); bare = the same no-op with
worker/celery.py's own settings and its reliable-fetch transport. ours = the real worker on
a realistic mix, in the wire format of tests/support/messages.py: per three
orders, one delivered and returned (placed, paid, ready to ship, shipped, delivered,
return requested, seller approves), one cancelled in its free hour (placed, paid,
cancel), one cancelled late and accepted by the seller (placed, paid, cancel, seller
accepts): 14 messages, 10 events.
Messages are queued stage by stage over blocks of orders, so two messages of one order
are never in flight together (as with real traffic, where an order's facts are minutes
apart). After the drain the events on `aftersales.notifications` are counted against the
10 expected per three orders.

Latency: a stock kombu consumer (kombu's own Redis transport, not the worker's) on a queue
bound `#` to `aftersales.events`, while messages are sent at a steady rate (100 msg/s unless
--latency-rate); latency = time an event is consumed - time its message was sent,
p50/p99 over the 5 messages of 14 that cause events (the first event of each). Its
baseline, same run, same messages and rate: the stock worker runs `bench.relay`, a task
that publishes its message to a queue, read by the same kind of consumer (sent -> read).

Idle: fresh workers started as deployed (Celery's worker heartbeat, gossip and mingle on;
ours on all its queues, with `celery beat`), doing nothing for --idle-seconds: CPU of the
worker's process tree and of beat (the scheduler's exact count), as % of one core (and
the stock and same-settings no-op workers' and Redis's, for comparison).

CPU per message (from /proc: utime + stime of the worker's process tree, and of the
embedded redis-server) is printed too: less sensitive than rates to a busy machine.
`--profile` runs `py-spy record --subprocesses` on ours during an extra drain and writes
bench/results/throughput-profile.txt (collapsed stacks) and a top-of-self-time table (and
for `--before`, throughput-profile-before.txt); bench/profile_split.py splits such a file
into the consumer process and the pool processes, by step.
`--metrics-cost` also drains, in turn with the others, the same worker with
AFTERSALES_METRICS_PORT=off, while ours' /metrics is scraped every `--scrape-every` seconds
(5; Prometheus scrapes every 15 s by default), and prints ours/ours-without-metrics
(issue 18: >= 0.97).
`--before DIR` also drains, in turn with the others and on orders of its own, the same
worker started from another checkout of this repository (DIR, e.g. `git worktree add
/tmp/before main`; run with this venv): a change's before and after in one run.
The ratio ours/bare is printed last; bench/results/throughput.json has everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from deadlines import ROOT, Bench, Proc, percentile, say, wait_for

from tests.observability.scraping import free_port_pair
from tests.support.messages import message as _message
from tests.support.messages import placed
from worker.cli.embedded_redis import free_port, start_embedded_redis

INBOUND = "aftersales.inbound"
OURS_IDLE = "aftersales.deadlines,aftersales.control"
NOOP_QUEUE = "bench.noop"
NOOP_IDLE = "bench.idle"
RELAY_QUEUE = "bench.relay"  # bench/support/noop_app.py: where bench.relay publishes
EVENTS_QUEUE = (
    "aftersales.notifications"  # bound '#' to aftersales.events (worker/adapters/topology.py)
)
LATENCY_QUEUE = "bench.latency"
BLOCK = 60  # orders per block: a block's stages are queued one after another (see above)
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULTS = ROOT / "bench" / "results"


# --- the message mix ---------------------------------------------------------------------

Step = tuple[str, dict[str, Any], str | None]  # (task, body, first event it causes)


def _returned(order: str, now: datetime) -> list[Step]:
    start = now - timedelta(days=5)
    request = f"r-{uuid.uuid4().hex[:10]}"
    return [
        ("aftersales.order_event", placed(order, start), None),
        ("aftersales.order_event",
         _message("order.paid", order, start + timedelta(minutes=5)), None),
        ("aftersales.order_event",
         _message("order.ready_to_ship", order, start + timedelta(hours=5)), None),
        ("aftersales.order_event", _message("order.shipped", order, start + timedelta(days=1),
                                            tracking_number="TRK1"), None),
        ("aftersales.order_event",
         _message("order.delivered", order, start + timedelta(days=3)), None),
        ("aftersales.buyer_action", _message(
            "buyer.return_requested", order, start + timedelta(days=4), request_id=request,
            kind="refund_only", reason="damaged", items=[{"sku": "SKU-2", "quantity": 1}]),
         "return.requested"),
        ("aftersales.seller_action", _message(
            "seller.return_approved", order, start + timedelta(days=4, hours=1),
            request_id=request), "return.approved"),
    ]  # fmt: skip


def _cancelled(order: str, now: datetime) -> list[Step]:
    return [
        ("aftersales.order_event", placed(order, now - timedelta(hours=2)), None),
        ("aftersales.order_event",
         _message("order.paid", order, now - timedelta(minutes=20)), None),
        ("aftersales.buyer_action", _message("buyer.cancel_requested", order,
                                             now - timedelta(minutes=1), reason="mistake"),
         "order.cancelled"),
    ]  # fmt: skip


def _accepted(order: str, now: datetime) -> list[Step]:
    return [
        ("aftersales.order_event", placed(order, now - timedelta(hours=5)), None),
        ("aftersales.order_event", _message("order.paid", order, now - timedelta(hours=4)), None),
        ("aftersales.buyer_action", _message("buyer.cancel_requested", order,
                                             now - timedelta(hours=1), reason="too slow"),
         "cancellation.requested"),
        ("aftersales.seller_action",
         _message("seller.cancel_accepted", order, now - timedelta(minutes=5)),
         "cancellation.accepted"),
    ]  # fmt: skip


FLOWS = (_returned, _cancelled, _accepted)
MESSAGES_PER_FLOWS = 14
EVENTS = {"return.requested": 1, "return.approved": 2, "order.cancelled": 2,
          "cancellation.requested": 1, "cancellation.accepted": 3}  # fmt: skip
"""Events each message causes, by the first of them (checked against the rules: a change
there shows as a mismatch of published and expected events)."""


def expected_events(steps: list[Step]) -> int:
    return sum(EVENTS[first] for _, _, first in steps if first)


# Which task each message type belongs to is checked by the worker itself: a message sent
# to the wrong task is dead-lettered, and the event count below would show it.


def mix(n: int, tag: str) -> Iterator[Step]:
    """About n messages (whole blocks of orders), queued stage by stage within a block."""
    now = datetime.now(UTC)
    orders = max(3, round(n / MESSAGES_PER_FLOWS * 3))
    for block in range(0, orders, BLOCK):
        flows = [
            FLOWS[i % 3](f"{tag}-{i:07d}", now) for i in range(block, min(orders, block + BLOCK))
        ]
        for stage in range(max(len(flow) for flow in flows)):
            yield from (flow[stage] for flow in flows if stage < len(flow))


# --- measuring ---------------------------------------------------------------------------


def cpu_seconds(pids: list[int], descendants: bool = True) -> float:
    """utime + stime of the processes and (by default) all their living descendants."""
    from deadlines import children_map

    tree, total, todo = children_map() if descendants else {}, 0, list(pids)
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def cpu_ns(pids: list[int]) -> int:
    """CPU time (ns, the scheduler's own count: /proc/<pid>/task/<tid>/schedstat) of the
    processes, their living descendants and all their threads: exact where /proc's utime
    and stime count 10 ms ticks (an idle process uses a few of them in 30 s)."""
    from deadlines import children_map

    tree, total, todo = children_map(), 0, list(pids)
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total


@dataclass
class Side:
    name: str
    procs: list[Proc]
    queue: str
    nodes: list[str] = field(default_factory=list)
    metrics_port: int = 0  # its /metrics, read for its batch sizes (ours)


class ThroughputBench(Bench):
    """bench/deadlines.py's Bench (processes, logs, FLUSHALL), with a state and a broker URL."""

    state_url: str = ""
    broker_url: str = ""
    redis_pid: int | None = None
    loglevel = "INFO"
    cluster = False  # the state is a Redis Cluster (AFTERSALES_REDIS_CLUSTER=1)
    metrics_port = 0  # set: ours and beat serve /metrics there (beat on the next port)

    @property
    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url, socket_timeout=600)

    def ours_env(self) -> dict[str, str]:
        env = super().ours_env()
        env["AFTERSALES_REDIS_URL"] = self.state_url
        if self.broker_url != self.state_url:
            env["AFTERSALES_BROKER_URL"] = self.broker_url
        if self.cluster:
            env["AFTERSALES_REDIS_CLUSTER"] = "1"
        if self.metrics_port:
            env["AFTERSALES_METRICS_PORT"] = str(self.metrics_port)
            env["AFTERSALES_METRICS_ADDRESS"] = "127.0.0.1"
        return env

    def noop_env(self, mode: str) -> dict[str, str]:
        env = self.naive_env()
        env.update(BENCH_BROKER_URL=self.broker_url, BENCH_NOOP_MODE=mode)
        env["AFTERSALES_REDIS_URL"] = self.state_url
        if self.broker_url != self.state_url:
            env["AFTERSALES_BROKER_URL"] = self.broker_url
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env["PYTHONPATH"]])
        return env

    def start(
        self,
        name: str,
        app: str,
        queues: str,
        env: dict[str, str],
        workers: int,
        deployed: bool = False,
    ) -> Side:
        """`deployed`: as a deployment runs it, with Celery's worker heartbeat, gossip and
        mingle (which the rate rounds leave out on both sides)."""
        side = Side(name, [], "")
        quiet = [] if deployed else ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        for _ in range(workers):
            unique = f"bench-{name}-{uuid.uuid4().hex[:6]}"
            argv = [
                sys.executable, "-m", "celery", "-A", app, "worker", "-P", "prefork",
                "-c", str(self.concurrency), "-Q", queues, "--loglevel", self.loglevel,
                "-n", f"{unique}@%h", *quiet,
            ]  # fmt: skip
            proc = self.spawn(f"{name}-{unique}", argv, env)
            proc.node = f"{unique}@{os.uname().nodename}"
            side.procs.append(proc)
        for proc in side.procs:
            self._wait_ping(proc)
        side.nodes = [proc.node for proc in side.procs]
        return side

    def _wait_ping(self, proc: Proc) -> None:
        from celery import Celery

        client = Celery("bench-ping", broker=self.broker_url, set_as_current=False)
        try:

            def answers() -> bool:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited; log:\n{proc.log_text()[-3000:]}")
                return bool(client.control.ping(destination=[proc.node], timeout=0.5))

            wait_for(answers, 120, f"{proc.name} to answer ping")
        finally:
            client.close()

    def flush(self) -> None:
        for url in {self.state_url, self.broker_url}:
            _flush(url)

    # --- one drain --------------------------------------------------------------------

    def fill(self, queue: str, steps: list[Step]) -> float:
        from celery import Celery

        client = Celery("bench-producer", broker=self.broker_url, set_as_current=False)
        client.conf.update(task_serializer="json", accept_content=["json"])
        start = time.perf_counter()
        with client.producer_or_acquire() as producer:
            for task, body, _ in steps:
                client.send_task(task, args=[body], queue=queue, producer=producer)
        client.close()
        return time.perf_counter() - start

    def drain(self, side: Side, n: int, profile: Path | None = None) -> dict[str, Any]:
        from celery import Celery

        control = Celery("bench-control", broker=self.broker_url, set_as_current=False)
        broker = self.broker
        pids = [proc.pid for proc in side.procs]
        spy = _py_spy(pids[0], profile) if profile else None
        batches0 = self._batches(side)
        cpu0, redis0 = cpu_seconds(pids), self._redis_cpu()
        main0 = cpu_seconds(pids, descendants=False)  # Celery's consumer, without the pool
        control.control.add_consumer(side.queue, destination=side.nodes, reply=True, timeout=5)
        # The clock starts at the first message taken, not at the add_consumer: an idle
        # consumer looks at a queue added meanwhile when its current wait ends (stock
        # kombu's BRPOP: 1 s at most; ours: AFTERSALES_FETCH_WAIT, 2 s), which is not
        # throughput.
        wait_for(lambda: broker.llen(side.queue) < n, 60, "the first message taken", 0.001)
        start = time.perf_counter()

        def drained() -> bool:
            return broker.llen(side.queue) == 0 and broker.hlen("unacked") == 0

        # Twice in a row: a message between the queue and the unacked hash is never missed.
        wait_for(lambda: drained() and (time.sleep(0.005) or drained()), 1800, "the drain", 0.01)
        seconds = time.perf_counter() - start
        cpu, redis1 = cpu_seconds(pids) - cpu0, self._redis_cpu()
        redis_cpu = None if redis0 is None or redis1 is None else redis1 - redis0
        main = cpu_seconds(pids, descendants=False) - main0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        control.control.cancel_consumer(side.queue, destination=side.nodes, reply=True, timeout=5)
        control.close()
        batches1 = self._batches(side)
        batch_mean = None
        if batches0 is not None and batches1 is not None and batches1[0] > batches0[0]:
            batch_mean = (batches1[1] - batches0[1]) / (batches1[0] - batches0[0])
        return {
            "n": n,
            "batch_mean": batch_mean,
            "seconds": seconds,
            "rate": n / seconds,
            "worker_cpu_ms_per_msg": cpu * 1000 / n,
            "main_cpu_ms_per_msg": main * 1000 / n,
            "redis_cpu_ms_per_msg": None if redis_cpu is None else redis_cpu * 1000 / n,
        }

    def _batches(self, side: Side) -> tuple[float, float] | None:
        """Ours: inbound batches so far and the messages in them, from its /metrics
        (aftersales_inbound_batch_messages, worker/shell/batch.py)."""
        if not side.metrics_port:
            return None
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{side.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                page = response.read().decode()
        except OSError:
            return None
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name.startswith("aftersales_inbound_batch_messages")
        }
        return (
            found.get("aftersales_inbound_batch_messages_count", 0.0),
            found.get("aftersales_inbound_batch_messages_sum", 0.0),
        )

    def _redis_cpu(self) -> float | None:
        return cpu_seconds([self.redis_pid]) if self.redis_pid else None

    def round(self, side: Side, steps: list[Step], profile: Path | None = None) -> dict[str, Any]:
        sent = self.fill(side.queue, steps)
        result = self.drain(side, len(steps), profile)
        result["send_seconds"] = sent
        say(
            f"  [{side.name}] {len(steps):,} msgs in {result['seconds']:.2f} s = "
            f"{result['rate']:,.0f} msg/s; worker CPU {result['worker_cpu_ms_per_msg']:.2f} "
            f"ms/msg (main {result['main_cpu_ms_per_msg']:.2f})"
            + _redis_note(result)
            + (f"; {result['batch_mean']:.1f} msgs a batch" if result.get("batch_mean") else "")
        )
        return result

    # --- latency ----------------------------------------------------------------------

    def latency(
        self, side: Side, steps: list[Step], rate: float, relay: bool = False
    ) -> dict[str, Any]:
        """Send at `rate`/s to a consuming worker; time each message to its first event (or,
        `relay`: the stock baseline, to its copy published by bench.relay)."""
        from celery import Celery

        listener = _Listener(self.broker_url, relay)
        control = Celery("bench-control", broker=self.broker_url, set_as_current=False)
        control.control.add_consumer(side.queue, destination=side.nodes, reply=True, timeout=5)
        client = Celery("bench-producer", broker=self.broker_url, set_as_current=False)
        client.conf.update(task_serializer="json", accept_content=["json"])
        sent: dict[tuple[str, str], float] = {}
        # Timed from the first message sent after the consumer took one: an idle consumer
        # looks at the added queue when its current wait ends (the drain's clock, above).
        warm_up = 0
        start = time.perf_counter()
        try:
            with client.producer_or_acquire() as producer:
                for i, (task, body, first) in enumerate(steps):
                    time.sleep(max(0.0, start + i / rate - time.perf_counter()))
                    if warm_up == i and (i == 0 or self.broker.llen(side.queue) >= i):
                        warm_up = i + 1  # nothing taken yet: this one is not timed
                    elif first:
                        key = (body["order_id"], body["type"] if relay else first)
                        sent[key] = time.perf_counter()
                    name = "bench.relay" if relay else task
                    client.send_task(name, args=[body], queue=side.queue, producer=producer)
            try:
                wait_for(lambda: all(key in listener.seen for key in sent), 120, "events", 0.05)
            except TimeoutError:
                say(
                    f"  !! {len(sent) - len(set(sent) & set(listener.seen))} of {len(sent)} "
                    f"events not seen; listener error: {listener.error!r}; inbound queue "
                    f"{self.broker.llen(side.queue)}, latency queue "
                    f"{self.broker.llen(RELAY_QUEUE if relay else LATENCY_QUEUE)}"
                )
        finally:
            listener.stop()
            control.control.cancel_consumer(side.queue, destination=side.nodes, reply=True)
            control.close()
            client.close()
        seen = listener.seen
        values = [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]
        slow = sorted(
            ((seen[key] - at) * 1000, key[1], at - start)
            for key, at in sent.items()
            if key in seen and seen[key] - at > 0.1
        )
        return {
            "over_100ms": len(slow),
            "slowest": [
                {"ms": ms, "type": kind, "sent_at_s": when} for ms, kind, when in slow[-10:]
            ],
            "messages": len(steps),
            "warm_up": warm_up,
            "rate": rate,
            "timed": len(values),
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
            "max_ms": max(values, default=float("nan")),
        }

    # --- idle ---------------------------------------------------------------------------

    def idle(self, seconds: float) -> dict[str, Any]:
        """CPU over `seconds` with nothing to do, of workers started as deployed (heartbeat,
        gossip, mingle, /metrics on free ports): ours on all its queues with a beat, the
        stock and same-settings no-ops, as % of one core. Redis is flushed first: the
        drains' orders have deadlines coming due, which beat would arm and ours fire."""
        self.flush()
        self.metrics_port = free_port_pair()
        sides = {
            "stock": self.start("idle-stock", "noop_app", NOOP_QUEUE + "-stock",
                                self.noop_env("stock"), 1, deployed=True),
            "bare": self.start("idle-bare", "noop_app", NOOP_QUEUE, self.noop_env("same"), 1,
                               deployed=True),
            "ours": self.start("idle-ours", "worker", f"{INBOUND},{OURS_IDLE}", self.ours_env(),
                               1, deployed=True),
        }  # fmt: skip
        beat = self.start_beat()
        time.sleep(5)  # start-up settles: beat's first ticks, the pool children idle
        pids = {name: [p.pid for p in side.procs] for name, side in sides.items()}
        pids["beat"] = [beat.pid]
        if self.redis_pid:
            pids["redis"] = [self.redis_pid]
        # the scheduler's exact count (ns): /proc's utime + stime count 10 ms ticks, a few
        # dozen in the window, and came out 0.1 % apart from run to run
        before = {name: cpu_ns(p) for name, p in pids.items()}
        start = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - start
        result: dict[str, Any] = {"seconds": elapsed}
        for name, p in pids.items():
            result[f"{name}_pct"] = 100 * (cpu_ns(p) - before[name]) / 1e9 / elapsed
        result["ours_and_beat_pct"] = result["ours_pct"] + result["beat_pct"]
        for proc in [beat, *(p for side in sides.values() for p in side.procs)]:
            proc.kill()
            self.procs.remove(proc)
        self.metrics_port = 0
        return result


class _Listener:
    """A stock kombu consumer (kombu's own Redis transport) on a queue bound '#' to the
    events, or (`relay`) on the queue bench.relay publishes to."""

    def __init__(self, url: str, relay: bool = False) -> None:
        from kombu import Connection, Consumer, Exchange, Queue

        self.seen: dict[tuple[str, str], float] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.connection = Connection(url, transport="redis")
        if relay:
            exchange = Exchange("bench.relay", type="direct", durable=True)
            queue = Queue(RELAY_QUEUE, exchange, routing_key="bench.relay")
        else:
            exchange = Exchange("aftersales.events", type="topic", durable=True)
            queue = Queue(LATENCY_QUEUE, exchange, routing_key="#", auto_delete=True)
        self.consumer = Consumer(
            self.connection.channel(), [queue], callbacks=[self._on], accept=["json"]
        )
        self.consumer.consume()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on(self, body: dict[str, Any], message: Any) -> None:
        self.seen.setdefault((body["subject"], body["type"]), time.perf_counter())
        message.ack()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.connection.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except Exception as exc:  # reported by the bench: timing without it is void
                self.error = exc
                return

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.consumer.cancel()
        self.connection.close()


def _event_type(raw: bytes) -> str:
    import base64

    envelope = json.loads(raw)
    return str(json.loads(base64.b64decode(envelope["body"]))["type"])


def _flush(url: str) -> None:
    try:
        redis.Redis.from_url(url).flushall()
    except redis.ResponseError:  # a cluster node: flush every primary
        from redis.cluster import RedisCluster

        RedisCluster.from_url(url).flushall()


def _latency_lines(results: dict[str, Any], lines: list[str]) -> None:
    """The latency pair (median round) and its ratios, into `lines` (and `results`)."""
    lat, base = results["latency"], results["latency_stock"]
    lines.append(
        f"  latency at {lat['rate']:,.0f} msg/s: ours sent -> event consumed p50 "
        f"{lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms ({lat['timed']} timed); stock "
        f"task relaying its message, sent -> read p50 {base['p50_ms']:.1f} ms, p99 "
        f"{base['p99_ms']:.1f} ms ({base['timed']} timed)"
    )
    results["latency_ratio"] = {
        "p50": lat["p50_ms"] / base["p50_ms"],
        "p99": lat["p99_ms"] / base["p99_ms"],
    }
    lines.append(
        f"  latency ours/stock: p50 {results['latency_ratio']['p50']:.2f}x (goal <= 1.5x), "
        f"p99 {results['latency_ratio']['p99']:.2f}x (goal <= 2x)"
    )
    if len(results.get("latency_rounds", [])) > 1:
        rounds = results["latency_rounds"]
        lines.append(
            "  latency rounds (the median round above), p50 ours/stock: "
            + ", ".join(f"{row['p50_ratio']:.2f}x" for row in rounds)
        )


def _redis_note(result: dict[str, Any]) -> str:
    value = result.get("redis_cpu_ms_per_msg")
    return "" if value is None else f", redis CPU {value:.2f} ms/msg"


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        say("  (py-spy not installed: no profile)")
        return None
    argv = [spy, "record", "--subprocesses", "--nonblocking", "-r", "200", "-p", str(pid),
            "-f", "raw", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attach before the clock starts
    return proc


def top_self(collapsed: Path, limit: int = 25) -> list[tuple[str, float]]:
    """Self time per function (share of samples) from py-spy's collapsed stacks."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        counts[stack.split(";")[-1]] += int(count)
    return [(frame, 100 * c / total) for frame, c in counts.most_common(limit)] if total else []


# --- the run -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="messages per drain (default 6000)")
    parser.add_argument("--rounds", type=int, default=2, help="drains per side, alternating")
    parser.add_argument("--quick", action="store_true", help="n=1500, one round")
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per side")
    parser.add_argument("--latency-n", type=int, default=1400, help="messages sent paced")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="msg/s (default 100)")
    parser.add_argument(
        "--latency-rounds", type=int, default=1, help="latency pairs (median reported)"
    )
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle window (0: none)")
    parser.add_argument("--state-url", default="", help="state Redis (default: embedded)")
    parser.add_argument("--broker-url", default="", help="broker Redis (default: state's)")
    parser.add_argument(
        "--redis-cluster", action="store_true", help="--state-url names a Redis Cluster node"
    )
    parser.add_argument("--loglevel", default="INFO", help="both workers' (default INFO)")
    parser.add_argument("--profile", action="store_true", help="py-spy on ours' last drain")
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="also ours with AFTERSALES_METRICS_PORT=off, ours' /metrics scraped meanwhile",
    )
    parser.add_argument(
        "--scrape-every", type=float, default=5.0, help="seconds between scrapes (default 5)"
    )
    parser.add_argument(
        "--before", type=Path, default=None, help="also the worker from this checkout"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.latency_n = 1500, 1, 700
        args.idle_seconds = min(args.idle_seconds, 15.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    server = None
    if not args.state_url:
        server = start_embedded_redis(data_dir=workdir / "redis", port=0)
    state_url = args.state_url or server.url  # type: ignore[union-attr]
    bench = ThroughputBench(workdir, SimpleNamespace(url=state_url), args.concurrency)  # type: ignore[arg-type]
    bench.state_url, bench.broker_url = state_url, args.broker_url or state_url
    bench.redis_pid = server.pid if server else None
    bench.loglevel = args.loglevel
    bench.cluster = args.redis_cluster
    os.environ["AFTERSALES_REDIS_URL"] = state_url
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    say(f"state {state_url}, broker {bench.broker_url}; {os.cpu_count()} CPUs; "
        f"{args.workers} worker(s) -c {args.concurrency}")  # fmt: skip
    # ours serves /metrics (the default is on); a free port, so nothing else answers there
    metrics_port = free_port()
    ours_env = {
        **bench.ours_env(),
        "AFTERSALES_METRICS_PORT": str(metrics_port),
        "AFTERSALES_METRICS_ADDRESS": "127.0.0.1",
    }
    scraper = None
    try:
        bench.flush()
        sides = {
            "stock": bench.start(
                "stock", "noop_app", NOOP_IDLE + "-stock", bench.noop_env("stock"), args.workers
            ),
            "bare": bench.start(
                "bare", "noop_app", NOOP_IDLE, bench.noop_env("same"), args.workers
            ),
            "ours": bench.start("ours", "worker", OURS_IDLE, ours_env, args.workers),
        }
        sides["ours"].metrics_port = metrics_port
        if args.metrics_cost:  # the same worker without metrics, drained in turn
            off = {**bench.ours_env(), "AFTERSALES_METRICS_PORT": "off"}
            sides["ours-nometrics"] = bench.start(
                "ours-nometrics", "worker", OURS_IDLE, off, args.workers
            )
            sides["ours-nometrics"].queue = INBOUND
            scraper = Scraper(metrics_port, args.scrape_every)
            scraper.start()
        if args.before:  # the worker from another checkout: its code, this venv
            bench.code_dir = args.before.resolve()
            before_env = {**bench.ours_env(), "AFTERSALES_METRICS_PORT": str(free_port())}
            before_env["AFTERSALES_METRICS_ADDRESS"] = "127.0.0.1"
            before_env["PYTHONPATH"] = str(bench.code_dir)
            try:
                sides["before"] = bench.start("before", "worker", OURS_IDLE, before_env, 1)
            finally:
                bench.code_dir = ROOT
            sides["before"].queue = INBOUND
        sides["stock"].queue = NOOP_QUEUE + "-stock"
        sides["bare"].queue, sides["ours"].queue = NOOP_QUEUE, INBOUND
        time.sleep(2)  # let start-up settle (pool children import, topology declared)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        events_before = bench.broker.llen(EVENTS_QUEUE)
        for number in range(args.rounds):
            say(f"round {number + 1}/{args.rounds}")
            steps = list(mix(args.n, f"r{number}"))
            names = list(sides)
            for other in ("ours-nometrics", "before"):
                if number % 2 and other in sides:  # every other round, the other first
                    first, second = names.index("ours"), names.index(other)
                    names[first], names[second] = names[second], names[first]
            for name in names:
                side = sides[name]
                # the worker without metrics gets orders of its own: the same ones again
                # would all be duplicates (one Redis), and cheap
                mine = steps
                if name in ("ours-nometrics", "before"):
                    mine = list(mix(args.n, f"r{number}-{name}"))
                runs[name].append(bench.round(side, mine))
        ours_sides = 1 + sum(other in sides for other in ("ours-nometrics", "before"))
        expected = expected_events(steps) * args.rounds * ours_sides
        events = bench.broker.llen(EVENTS_QUEUE) - events_before
        results["ours_events"] = {"expected": expected, "published": events}
        if os.environ.get("BENCH_DEBUG"):
            raw = bench.broker.lrange(EVENTS_QUEUE, 0, -1)
            say(repr(Counter(_event_type(r) for r in raw)))
            say(repr(bench.broker.lrange("aftersales.dead_letter", 0, 3)))
        for name, rows in runs.items():
            results[name] = {"rounds": rows, "rate": statistics.median(r["rate"] for r in rows)}
        if args.profile:  # an extra drain: py-spy slows the worker, so it is not timed
            RESULTS.mkdir(parents=True, exist_ok=True)
            for name in ("ours", "before"):
                if name not in sides:
                    continue
                say(f"profile: one more drain of {name} under py-spy (not counted)")
                suffix = "" if name == "ours" else f"-{name}"
                profile = RESULTS / f"throughput-profile{suffix}.txt"
                bench.round(sides[name], list(mix(args.n, f"prof-{name}")), profile)
                results[f"profile{suffix}"] = {"file": str(profile), "top_self": top_self(profile)}
        rate = args.latency_rate or results["ours"]["rate"] / 2
        say(f"latency: {args.latency_n:,} messages at {rate:,.0f} msg/s, each side, "
            f"{args.latency_rounds} round(s)")  # fmt: skip
        pairs = []
        for number in range(args.latency_rounds):  # stock then ours, round by round
            stock_side = bench.latency(
                sides["stock"], list(mix(args.latency_n, f"lats{number}")), rate, relay=True
            )
            ours_side = bench.latency(
                sides["ours"], list(mix(args.latency_n, f"lat{number}")), rate
            )
            pairs.append((ours_side["p50_ms"] / stock_side["p50_ms"], ours_side, stock_side))
        pairs.sort(key=lambda pair: pair[0])
        if pairs:  # --latency-rounds 0: none
            _, results["latency"], results["latency_stock"] = pairs[len(pairs) // 2]  # median
        results["latency_rounds"] = [{"p50_ratio": r, "ours": o, "stock": s} for r, o, s in pairs]
        if args.idle_seconds:
            say(f"idle: {args.idle_seconds:g} s with nothing to do (ours with a beat)")
            results["idle"] = bench.idle(args.idle_seconds)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        if scraper is not None:
            scraper.stop()
            took = sorted(scraper.seconds) or [0.0]
            results["scrapes"] = {
                "ok": scraper.ok,
                "failed": scraper.failed,
                "median_ms": 1000 * statistics.median(took),
                "max_ms": 1000 * took[-1],
            }
        bench.stop_all()
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say(report(results, args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    say(f"results written to {args.json}")
    return 0


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["", f"Inbound throughput, {args.workers} worker(s) -c {args.concurrency}, "
             f"median of {args.rounds} drain(s) of {args.n:,} messages"]  # fmt: skip
    for name in ("stock", "bare", "ours", "before"):
        if name in results:
            row = results[name]["rounds"][-1]
            lines.append(
                f"  {name:<6} {results[name]['rate']:>9,.0f} msg/s   worker CPU "
                f"{row['worker_cpu_ms_per_msg']:.2f} ms/msg (main process "
                f"{row['main_cpu_ms_per_msg']:.2f}){_redis_note(row)}"
            )
    events = results["ours_events"]
    lines.append(f"  ours events published {events['published']:,} of {events['expected']:,}")
    if "latency" in results:
        _latency_lines(results, lines)
    if "idle" in results:
        idle = results["idle"]
        lines.append(
            f"  idle over {idle['seconds']:.0f} s, % of one core: ours worker "
            f"{idle['ours_pct']:.2f} + beat {idle['beat_pct']:.2f} = "
            f"{idle['ours_and_beat_pct']:.2f} (goal <= 0.3); stock worker "
            f"{idle['stock_pct']:.2f}; same-settings no-op {idle['bare_pct']:.2f}"
            + (f"; redis {idle['redis_pct']:.2f}" if "redis_pct" in idle else "")
        )
    if "profile" in results:
        lines.append(f"  profile (share of samples, self time): {results['profile']['file']}")
        top = results["profile"]["top_self"][:12]
        lines += [f"    {share:5.1f} %  {frame}" for frame, share in top]
    if "ours-nometrics" in results:
        row = results["ours-nometrics"]["rounds"][-1]
        lines.append(
            f"  ours without metrics {results['ours-nometrics']['rate']:>9,.0f} msg/s   worker "
            f"CPU {row['worker_cpu_ms_per_msg']:.2f} ms/msg"
        )
        cost = results["ours"]["rate"] / results["ours-nometrics"]["rate"]
        results["metrics_ratio"] = cost
        scrapes = results.get("scrapes", {})
        lines.append(
            f"metrics on/off: {cost:.3f}x (goal >= 0.97x; ours' /metrics scraped "
            f"{scrapes.get('ok', 0)} times every {args.scrape_every:g} s, "
            f"{scrapes.get('failed', 0)} failed, median {scrapes.get('median_ms', 0):.0f} ms, "
            f"max {scrapes.get('max_ms', 0):.0f} ms)"
        )
    if "before" in results:
        results["ratio_before_stock"] = results["before"]["rate"] / results["stock"]["rate"]
        results["ratio_ours_before"] = results["ours"]["rate"] / results["before"]["rate"]
        lines.append(
            f"ratio before/stock: {results['ratio_before_stock']:.2f}x; ours/before: "
            f"{results['ratio_ours_before']:.2f}x (before = {args.before})"
        )
    ratio = results["ours"]["rate"] / results["bare"]["rate"]
    stock = results["ours"]["rate"] / results["stock"]["rate"]
    results["ratio"], results["ratio_stock"] = ratio, stock
    lines.append(f"ratio ours/bare (same-settings no-op): {ratio:.2f}x")
    lines.append(f"ratio ours/stock (stock Celery no-op): {stock:.2f}x (goal >= 1.0x)")
    return "\n".join(lines)


class Scraper:
    """Prometheus's part: GET /metrics every `every` seconds (Prometheus: 15 s by default)."""

    def __init__(self, port: int, every: float) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every = every
        self.ok = self.failed = 0
        self.seconds: list[float] = []  # how long each scrape took
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import urllib.request

        while not self._stop.wait(self.every):
            began = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                self.ok += 1
                self.seconds.append(time.monotonic() - began)
            except OSError:
                self.failed += 1


if __name__ == "__main__":
    sys.exit(main())
