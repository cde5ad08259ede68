"""Per-deadline cost of the firing path, in-process, step by step.

    .venv/bin/python bench/firing_profile.py [--n 2000] [--rounds 3] [--batch 100] [--cprofile N]
                                             [--json PATH]

Starts its own embedded Redis (free port), declares the worker's topology (so
`aftersales.events` has its real bindings: notifications '#', refunds 'refund.#' and
'order.cancelled'), places N unpaid orders through the real service path with their
unpaid_expiry already due, then fires every deadline by calling the real task body, run
eagerly in this process: `tasks.deadlines.fire_deadlines` with `--batch` members per
call (the batch task the tick sends), or `fire_deadline` once per deadline with
`--batch 0` (gate, load, decide, commit, publish of `order.cancelled`, confirm). Each
step is timed by wrapping the real adapters' methods. Each round uses fresh orders; the
first round also warms up (connections, script cache, declarations) and is not counted
in the medians; then the process's heap is frozen (`gc.freeze()`), as the worker's is
once started, so the cyclic collector walks only what the firings made (without it the
task body measured ~15 % slower than the worker pays).

What it prints per deadline (median over rounds of each round's mean):
  task body    the whole task function, per deadline
  load         RedisStore.load (HMGET + state decode), load_for_firing or
               load_many_for_firing
  gate         the backlog read (queue depth + in-flight), if a separate round trip
  commit       RedisStore.commit (build ARGV + one Lua commit), or commit_many
  publish      KombuPublisher.publish (the order.cancelled event)
  confirm      RedisStore.confirm_published
  other        the rest: decide, build the event, task glue
and the Redis round trips per deadline (a command or a pipeline: one).

With --cprofile N, the last round runs under cProfile and prints the top N functions by
own time (`BENCH_FIRING_SORT=cumulative` sorts otherwise; `BENCH_FIRING_PSTATS=path` also
writes the stats there, for pstats' callers view).

It measures the Python/Redis side of one pool process, not Celery's own per-task
overhead (receive, ack, task events) nor the consumer's holder write.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from support.in_process import embedded_worker  # noqa: E402
from support.redis_meter import count_round_trips  # noqa: E402

STEPS = ("load", "gate", "commit", "publish", "confirm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="deadlines fired per round")
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds (plus a warm-up)")
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="members per batch task (aftersales.deadline_batch); 0: one task per deadline",
    )
    parser.add_argument(
        "--cprofile", type=int, default=0, help="top N functions by own time (last round)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    with embedded_worker("firing-profile-"):  # the per-firing log line is part of the cost
        results = profile(args.n, args.rounds, args.batch, args.cprofile)
    print(render(results))
    if results.get("cprofile"):
        print(results["cprofile"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def profile(n: int, rounds: int, batch: int, top: int = 0) -> dict[str, Any]:
    from deadlines import placed_body  # bench/deadlines.py: the same unpaid order

    from schemas.inbound import ANY_MESSAGE
    from schemas.types import format_timestamp
    from tasks import deadlines as deadline_tasks
    from worker import runtime
    from worker.adapters import topology
    from worker.celery import app

    with app.connection_for_write() as connection:  # what the worker does at start-up
        channel = connection.default_channel
        for queue in (*topology.DECLARED, *topology.CONSUMED):
            queue(channel).declare()

    service, store, publisher = runtime.service(), runtime.store(), runtime.publisher()
    client = runtime.redis_client()
    spent: dict[str, float] = defaultdict(float)
    round_trips = count_round_trips()

    def timed(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[step] += time.perf_counter() - start

        return wrapper

    for step, name in (
        ("load", "load"),
        ("load", "load_for_firing"),
        ("load", "load_many_for_firing"),
        ("gate", "backlog"),
        ("commit", "commit"),
        ("commit", "commit_many"),
        ("confirm", "confirm_published"),
    ):
        if hasattr(store, name):
            setattr(store, name, timed(step, getattr(store, name)))
    publisher.publish = timed("publish", publisher.publish)  # type: ignore[method-assign]
    if hasattr(publisher, "publish_many"):  # a batch's events: one producer, one pipeline
        publisher.publish_many = timed("publish", publisher.publish_many)  # type: ignore[method-assign]

    rows: list[dict[str, float]] = []
    cprofile_text = ""
    for round_no in range(rounds + 1):
        if round_no == 1:  # warmed up: the heap frozen, as the worker's (hooks.freeze_heap)
            gc.freeze()
        due = datetime.now(UTC) - timedelta(seconds=5)
        orders = [f"prof-{round_no}-{i:06d}" for i in range(n)]
        for order_id in orders:  # placed 48 h before `due`: unpaid_expiry is due now
            outcome = service.handle_message(
                ANY_MESSAGE.validate_python(placed_body(order_id, due - timedelta(hours=48)))
            )
            assert outcome.status == "applied", outcome
        deadline_ids = []
        for order_id in orders:
            state = store.load(order_id).state
            assert state is not None
            (deadline,) = state.deadlines.values()
            deadline_ids.append((deadline.id, format_timestamp(deadline.due_at)))
        client.delete("aftersales.notifications", "aftersales.refunds")
        spent.clear()
        trips0 = round_trips()
        profiler = cProfile.Profile() if top and round_no == rounds else None
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        members = [
            [order_id, deadline_id, due_text]
            for order_id, (deadline_id, due_text) in zip(orders, deadline_ids, strict=True)
        ]
        for first in range(0, n, batch or 1):
            if batch:  # one batch task, as the tick sends them
                counts = deadline_tasks.fire_deadlines(members[first : first + batch])
                assert set(counts) == {"applied"}, counts
            else:
                status = deadline_tasks.fire_deadline(*members[first])
                assert status == "applied", status
        total = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats(os.environ.get("BENCH_FIRING_SORT", "tottime")).print_stats(top)
            if dump := os.environ.get("BENCH_FIRING_PSTATS"):  # for pstats' callers view
                stats.dump_stats(dump)
            cprofile_text = text.getvalue()
        calls = round_trips() - trips0
        fired = client.llen("aftersales.notifications")
        assert fired == n, f"{fired} order.cancelled events for {n} firings"
        row = {"task_body": total / n * 1000}
        row.update({step: spent.get(step, 0.0) / n * 1000 for step in STEPS})
        row["other"] = row["task_body"] - sum(row[step] for step in STEPS)
        row["round_trips"] = calls / n
        row["per_second"] = n / total
        if round_no:  # round 0 is the warm-up
            rows.append(row)
    return {
        "n": n,
        "rounds": rounds,
        "batch": batch,
        "cpus": os.cpu_count(),
        "median": {key: statistics.median(r[key] for r in rows) for key in rows[0]},
        "rounds_detail": rows,
        "cprofile": cprofile_text,
    }


def render(results: dict[str, Any]) -> str:
    m = results["median"]
    lines = [
        f"firing path, {results['n']:,} deadlines x {results['rounds']} rounds "
        f"(median of round means), {results['cpus']} CPUs, "
        + (f"batch tasks of {results['batch']}" if results["batch"] else "one task each"),
        f"  {'step':<12}{'ms/deadline':>12}",
    ]
    for key in ("task_body", *STEPS, "other"):
        lines.append(f"  {key:<12}{m[key]:>12.3f}")
    lines.append(f"  {'deadlines/s':<12}{m['per_second']:>12.0f}   (one process, task body only)")
    lines.append(f"  {'round trips':<12}{m['round_trips']:>12.3f}   (to Redis, per deadline)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
