"""Per-message cost of an inbound task in a pool process, in-process, step by step.

    .venv/bin/python bench/inbound_cost.py [--n 3000] [--rounds 3] [--cprofile N] [--batch N]
                                           [--json PATH]

What a prefork pool child does for one inbound message, without the pool's pipe: Celery's
`fast_trace_task` (decode the task message's JSON body, the tracer, the task_prerun and
task_postrun receivers: log context, metrics), then the task body (screen the arguments,
validate the message, digest it, begin.lua, decode the order's state, decide, build the
commit, commit.lua with its events pushed by the commit itself, the log line). Run against
an embedded Redis (free port) on bench/throughput.py's message mix (placed, paid, ...
three kinds of order, 14 messages and 10 events per three orders), with the worker's own
settings, metrics on (as deployed) and its log lines written to /dev/null.

Each step is timed by wrapping the real functions (wall time: a Redis round trip counts
the wait for Redis too); `cpu` is this process's CPU time per message, `redis cpu` the
embedded server's. Round trips: commands or pipelines sent to Redis from this process.
Round 0 warms up (connections, script cache, policy) and is not counted; each number is
the median over the counted rounds. `--cprofile N` also prints the N functions with the
most cumulative time in the last round (cProfile slows everything: shares only).
`--batch N` also measures the batch path's pool side, `tasks.inbound.handle_batch` on N
messages at a time (worker/shell/batch.py; BENCH_BATCH_PROFILE=1 prints its cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
import timeit
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from support.in_process import embedded_worker  # noqa: E402
from support.redis_meter import count_round_trips  # noqa: E402

STEPS = (
    ("celery", "fast_trace_task minus the task body: decode, tracer, signal receivers"),
    ("screen", "arguments screened (message_facts), log context bound"),
    ("parse", "pydantic validation of the message"),
    ("digest", "SHA-256 of the canonical body"),
    ("begin", "begin.lua round trip (claim, duplicate check, load), without the decode"),
    ("decode", "the order's state decoded (state_codec)"),
    ("decide", "worker.rules.decide"),
    ("commit_for", "the commit built from the decision"),
    ("encode", "the order's state encoded (state_codec)"),
    ("pushes", "event messages built for the commit to push (direct_publish)"),
    ("commit", "commit.lua round trip with its ARGV, without encode and pushes"),
    ("publish", "outbox publish after the commit (nothing left with direct events)"),
    ("log", "structlog lines of the task"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="messages per round (about)")
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds (plus a warm-up)")
    parser.add_argument("--cprofile", type=int, default=0, help="top N cumulative (last round)")
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="also the batch path's pool side (tasks.inbound.handle_batch), N messages a call",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    from worker.cli.embedded_redis import free_port

    metrics = {
        "AFTERSALES_METRICS_PORT": str(free_port()),
        "AFTERSALES_METRICS_ADDRESS": "127.0.0.1",
    }
    with embedded_worker("inbound-cost-", AFTERSALES_LOG_FORMAT="json", **metrics) as server:
        results = profile(args.n, args.rounds, args.cprofile, server.pid, args.batch)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def profile(n: int, rounds: int, top: int, redis_pid: int | None, batch: int = 0) -> dict[str, Any]:
    from celery.app import trace as celery_trace
    from kombu.serialization import dumps as serialize
    from throughput import EVENTS_QUEUE, cpu_seconds, expected_events, mix

    import tasks.inbound as inbound
    import worker.shell.hooks as hooks
    from worker import rules, runtime
    from worker.adapters import topology
    from worker.celery import app
    from worker.observability import hooks as metrics_hooks
    from worker.service_layer import outbox, service

    app.loader.import_default_modules()
    with app.connection_for_write() as connection:  # what the worker does at start-up
        channel = connection.default_channel
        for queue in (*topology.DECLARED, *topology.CONSUMED):
            queue(channel).declare()
    hooks.announce_release()
    metrics_hooks.on_worker_init()  # metrics on, as deployed (the endpoint and the files)
    celery_trace.setup_worker_optimizations(app, "inbound-cost@bench")
    for name, task in app.tasks.items():  # what the prefork pool's process initializer does
        task.__trace__ = celery_trace.build_tracer(
            name, task, app.loader, "inbound-cost@bench", app=app
        )
    metrics_hooks.on_process_init()

    store = runtime.store()
    client = runtime.redis_client()
    sketch = _batch_sketch(n, rounds, batch, redis_pid) if batch else None
    spent: dict[str, float] = defaultdict(float)  # wall time
    burnt: dict[str, float] = defaultdict(float)  # this process's CPU time
    round_trips = count_round_trips()
    # Each step's time excludes the timed steps it calls (the wrappers nest).
    inner: list[float] = [0.0, 0.0]

    timed_calls = [0]

    def timed(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            timed_calls[0] += 1
            outer = inner[:]
            inner[:] = [0.0, 0.0]
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                took, used = time.perf_counter() - start, time.process_time() - cpu
                spent[step] += took - inner[0]
                burnt[step] += used - inner[1]
                inner[:] = [outer[0] + took, outer[1] + used]

        return wrapper

    # What the timing itself costs, per timed call (a wrapped no-op against a plain one).
    noop, wrapped = (lambda: None), timed("calibration", lambda: None)
    plain_s = min(timeit.repeat(noop, number=20_000, repeat=5)) / 20_000
    wrapped_s = min(timeit.repeat(wrapped, number=20_000, repeat=5)) / 20_000
    per_call = max(0.0, wrapped_s - plain_s)

    store.codec.decode = timed("decode", store.codec.decode)  # type: ignore[method-assign]
    store.codec.encode = timed("encode", store.codec.encode)  # type: ignore[method-assign]
    if store.direct is not None:
        store.direct.pushes = timed("pushes", store.direct.pushes)  # type: ignore[method-assign]
    store.begin_message = timed("begin", store.begin_message)  # type: ignore[method-assign]
    store.commit = timed("commit", store.commit)  # type: ignore[method-assign]
    rules.decide = timed("decide", rules.decide)
    service.commit_for = timed("commit_for", service.commit_for)
    outbox.Outbox.publish = timed("publish", outbox.Outbox.publish)  # type: ignore[method-assign]
    inbound.parse_message = timed("parse", inbound.parse_message)
    inbound._digest = timed("digest", inbound._digest)
    inbound.message_facts = timed("screen", inbound.message_facts)
    inbound.bind = timed("screen", inbound.bind)
    inbound.log = _TimedLogger(inbound.log, timed)
    body_fn = inbound.handle_inbound
    inbound.handle_inbound = timed("body", body_fn)

    rows: list[dict[str, float]] = []
    profiler = cProfile.Profile() if top else None
    for round_no in range(rounds + 1):
        steps = list(mix(n, f"cost{round_no}-{uuid.uuid4().hex[:6]}"))
        calls = [_task_call(app, serialize, task, body) for task, body, _ in steps]
        client.delete(EVENTS_QUEUE)
        spent.clear()
        burnt.clear()
        timed_calls[0] = 0
        trips0, cpu0 = round_trips(), time.process_time()
        redis0 = cpu_seconds([redis_pid]) if redis_pid else 0.0
        last = round_no == rounds and profiler is not None
        if last:
            profiler.enable()  # type: ignore[union-attr]
        start = time.perf_counter()
        results = [celery_trace.fast_trace_task(*call) for call in calls]
        total = time.perf_counter() - start
        if last:
            profiler.disable()  # type: ignore[union-attr]
        cpu = time.process_time() - cpu0
        redis_cpu = (cpu_seconds([redis_pid]) if redis_pid else 0.0) - redis0
        trips = round_trips() - trips0
        failed = [r for r in results if r[0]]
        statuses = defaultdict(int)
        for r in results:
            statuses[str(r[1])] += 1
        assert not failed, failed[:3]
        published = client.llen(EVENTS_QUEUE)
        expected = expected_events(steps)
        assert published == expected, f"{published} events for {expected} expected ({statuses})"
        count = len(steps)
        row = {"pool_child": total / count * 1000}
        row["celery"] = (total - sum(spent.values())) / count * 1000
        row.update({step: spent.get(step, 0.0) / count * 1000 for step, _ in STEPS[1:]})
        row["task_glue"] = spent["body"] / count * 1000
        row["cpu"] = cpu / count * 1000
        row["cpu_celery"] = (cpu - sum(burnt.values())) / count * 1000
        row.update({f"cpu_{s}": burnt.get(s, 0.0) / count * 1000 for s, _ in STEPS[1:]})
        row["cpu_task_glue"] = burnt["body"] / count * 1000
        row["redis_cpu"] = redis_cpu / count * 1000
        row["round_trips"] = trips / count
        row["timing_overhead"] = timed_calls[0] * per_call / count * 1000
        row["per_second"] = count / total
        if round_no:  # round 0 is the warm-up
            rows.append(row)
    profile_text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
        profile_text = out.getvalue()
    return {
        "n": len(steps),
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "median": {key: statistics.median(r[key] for r in rows) for key in rows[0]},
        "rounds_detail": rows,
        "cprofile": profile_text,
        "batch": sketch,
    }


def _batch_sketch(n: int, rounds: int, batch: int, redis_pid: int | None) -> dict[str, Any]:
    """The batch path's pool side per message: tasks.inbound.handle_batch, what a pool
    process runs for the inbound messages the consumer took together (worker/shell/batch.py:
    validation, digests, begin.lua for all in one pipeline, decisions, commit.lua for all in
    another, the log lines and metrics), on `batch` consecutive messages at a time."""
    from throughput import EVENTS_QUEUE, cpu_seconds, expected_events, mix

    from tasks.inbound import handle_batch
    from worker import runtime

    client = runtime.redis_client()
    rows, profiler = [], cProfile.Profile()
    for round_no in range(rounds + 1):
        steps = list(mix(n, f"batch{round_no}-{uuid.uuid4().hex[:6]}"))
        client.delete(EVENTS_QUEUE)
        items = [(task, str(uuid.uuid4()), [body], {}, {}) for task, body, _ in steps]
        chunks = [items[i : i + batch] for i in range(0, len(items), batch)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        redis0 = cpu_seconds([redis_pid]) if redis_pid else 0.0
        if round_no == rounds:
            profiler.enable()
        results = [result for chunk in chunks for result in handle_batch(chunk)]
        profiler.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        redis_cpu = (cpu_seconds([redis_pid]) if redis_pid else 0.0) - redis0
        assert None not in results, "a message left to Celery's way"
        published = client.llen(EVENTS_QUEUE)
        assert published == expected_events(steps), f"{published} events"
        if round_no:
            count = len(steps)
            rows.append(
                {
                    "cpu": cpu / count * 1000,
                    "wall": wall / count * 1000,
                    "redis_cpu": redis_cpu / count * 1000,
                }
            )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats(
        os.environ.get("BENCH_BATCH_SORT", "tottime")
    ).print_stats(45)
    return {
        "batch": batch,
        **{k: statistics.median(r[k] for r in rows) for k in rows[0]},
        "cprofile_tottime": text.getvalue(),
    }


def _task_call(app: Any, serialize: Any, task: str, body: dict[str, Any]) -> tuple[Any, ...]:
    """fast_trace_task's arguments, as the worker's Request passes them to the pool."""
    task_id = str(uuid.uuid4())
    headers, properties, payload, _ = app.amqp.as_task_v2(task_id, task, args=[body])
    content_type, encoding, data = serialize(payload, serializer="json")
    request = {
        **headers,
        "properties": {**properties, "delivery_info": {}},
        "reply_to": properties.get("reply_to"),
        "correlation_id": properties.get("correlation_id"),
        "hostname": "inbound-cost@bench",
        "delivery_info": {"exchange": "", "routing_key": task, "priority": 0,
                          "redelivered": False},
    }  # fmt: skip
    return (task, task_id, request, data, content_type, encoding)


class _TimedLogger:
    """The task module's logger, each call timed as `log`."""

    def __init__(self, logger: Any, timed: Callable[..., Any]) -> None:
        self._logger, self._timed = logger, timed

    def __getattr__(self, name: str) -> Any:
        return self._timed("log", getattr(self._logger, name))


def render(results: dict[str, Any]) -> str:
    median = results["median"]
    load = ", ".join(f"{x:.1f}" for x in results["load"])
    lines = [
        f"Inbound task in one process, {results['n']:,} messages x {results['rounds']} rounds "
        f"(median), {results['cpus']} CPUs, load average {load}",
        f"  {'step':<12} {'wall ms':>7} {'share':>6} {'cpu ms':>7} {'share':>6}  (per message)",
    ]
    total, cpu = median["pool_child"], median["cpu"]
    for step, what in (*STEPS[:1], ("task_glue", "the rest of the task body"), *STEPS[1:]):
        value, used = median[step], median[f"cpu_{step}"]
        lines.append(
            f"  {step:<12} {value:7.3f} {100 * value / total:5.1f}% {used:7.3f} "
            f"{100 * used / cpu:5.1f}%  {what}"
        )
    lines.append(f"  {'total':<12} {total:7.3f}         wall time per message in the pool child")
    lines.append(f"  {'cpu':<12} {median['cpu']:7.3f}         CPU time of this process per message")
    lines.append(f"  {'redis cpu':<12} {median['redis_cpu']:7.3f}         the embedded Redis's")
    lines.append(f"  round trips  {median['round_trips']:7.2f}         per message")
    lines.append(
        f"  (the timing itself adds about {median['timing_overhead']:.3f} ms a message, "
        "in the steps that call timed ones, and in the total)"
    )
    lines.append(f"  rate         {median['per_second']:7.0f}         messages/s, one process")
    batched = results.get("batch")
    if batched:
        lines.append(
            f"  batch path, {batched['batch']} messages a call (tasks.inbound.handle_batch, "
            f"what a pool process runs): CPU {batched['cpu']:.3f} ms a message (one task per "
            f"message above: {median['cpu']:.3f}), wall {batched['wall']:.3f}, "
            f"redis cpu {batched['redis_cpu']:.3f}"
        )
        if os.environ.get("BENCH_BATCH_PROFILE"):
            lines += ["", batched["cprofile_tottime"]]
    if results["cprofile"]:
        lines += ["", results["cprofile"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
