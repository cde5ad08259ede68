"""Capacity model inputs, measured: Redis bytes per order and per pending deadline, Redis
operations per message and per firing, messages and firings per second per worker
process; then the model table for 100k .. 100M orders a day (docs/capacity.md).

    .venv/bin/python bench/capacity.py [--orders 2000] [--fire 1000] [--rate-orders 400]

Starts its own embedded Redis, a real worker (`celery -A worker worker -c 2`) and beat
(bench/deadlines.py's helpers), and measures:

1. idle: 10 s of the worker and beat doing nothing (ticks, beats, fetch polls): a rate
   per second, subtracted only where a phase is known to be idle (before arming);
2. lifecycle: --orders orders, one message type at a time for all of them (placed, paid,
   ready_to_ship, shipped, delivered, return_requested, return_approved,
   return_tracking_submitted, return_received = refunded and closed), each phase waiting
   until every message is applied. Per message type: INFO commandstats delta (commands
   inside Lua scripts included) / messages, INFO total_reads_processed delta (~ client
   round trips) / messages, Redis CPU seconds / messages; a second, smaller pass
   (--split-orders, MONITOR on, which slows Redis) splits the commands by key (state,
   broker, liveness, other) and origin (client or script). After each
   phase: INFO used_memory delta / orders (less the broker's keys, e.g. events waiting
   in queues nobody consumes here) and MEMORY USAGE per key kind (mean of 50 orders)
   plus the global structures' share;
3. firing: --fire orders placed (unpaid) through Service.handle_message with pipelined
   commits, their unpaid_expiry due a few seconds later; the worker and beat fire them.
   Same counters per firing; bytes per pending deadline (schedule entry, and used_memory
   of an order with one deadline);
4. rate: a drain with `-c 1` (MONITOR off): --rate-orders orders' messages queued first,
   then one worker process drains them; firings/s with `-c 1` the same way; both per
   worker CPU-second (the model's input) and by the wall clock. Messages/s per process
   come from bench/results/throughput.json instead when bench/throughput.py wrote it.

Writes bench/results/capacity.json and prints the measured inputs and the model table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "bench" / "support")]

import redis  # noqa: E402
from capacity_model import Assumptions, Inputs, messages_per_order, model, table  # noqa: E402
from capacity_phases import CapacityBench, Phases  # noqa: E402
from deadlines import say  # noqa: E402

from worker.cli.embedded_redis import start_embedded_redis  # noqa: E402

HAPPY = ("order.placed", "order.paid", "order.ready_to_ship", "order.shipped", "order.delivered")
RETURN = (
    "buyer.return_requested",
    "seller.return_approved",
    "buyer.return_tracking_submitted",
    "seller.return_received",
)
POINTS = {  # lifecycle points of issue 11: after which message type
    "placed": "order.placed",
    "paid": "order.paid",
    "delivered": "order.delivered",
    "return requested": "buyer.return_requested",
    "refunded/closed": "seller.return_received",
}


def throughput_rate(path: Path) -> tuple[float, str] | None:
    """Messages/s per worker process from bench/throughput.py's results, if it wrote
    `messages_per_s_per_process`, or runs with `processes` and `messages_per_s`."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if "messages_per_s_per_process" in data:
        return float(data["messages_per_s_per_process"]), str(path)
    runs = [r for r in data.get("runs", []) if r.get("processes") and r.get("messages_per_s")]
    one = [r for r in runs if int(r["processes"]) == 1 and not r.get("cluster")]
    if one:
        return float(one[0]["messages_per_s"]), str(path)
    return None


def mix(per_type: dict[str, dict[str, Any]], key: str, rate: float) -> float:
    """Per-message mean of `key` over a realistic order: the happy path, plus the return
    flow for `rate` of the orders."""
    happy = sum(per_type[t][key] for t in HAPPY)
    back = sum(per_type[t][key] for t in RETURN)
    return (happy + rate * back) / messages_per_order(len(HAPPY), len(RETURN), rate)


def build_inputs(results: dict[str, Any], a: Assumptions) -> Inputs:
    per_type, split = results["lifecycle"]["per_type"], results["split"]["per_type"]
    points, fire = results["lifecycle"]["points"], results["firing"]
    rate = a.return_rate
    delivered, closed = points["delivered"], points["refunded/closed"]
    at_rest = (1 - rate) * delivered["bytes_per_order"] + rate * closed["bytes_per_order"]
    events = sum(per_type[t]["events_per_message"] for t in HAPPY) + rate * sum(
        per_type[t]["events_per_message"] for t in RETURN
    )
    return Inputs(
        messages_per_order=messages_per_order(len(HAPPY), len(RETURN), rate),
        firings_per_order=a.firings_per_order,
        ops_per_message=mix(per_type, "ops", rate),
        ops_per_firing=fire["ops"],
        round_trips_per_message=mix(per_type, "round_trips", rate),
        round_trips_per_firing=fire["round_trips"],
        redis_cpu_us_per_message=mix(per_type, "redis_cpu_us", rate),
        redis_cpu_us_per_firing=fire["redis_cpu_us"],
        broker_ops_per_message=mix(split, "broker_ops", rate),
        broker_ops_per_firing=results["split"]["firing"]["broker_ops"],
        events_per_order=events + a.firings_per_order * fire["events_per_message"],
        bytes_per_order_at_rest=at_rest,
        messages_per_s_per_process=results["rate"]["messages_per_s_per_process"],
        firings_per_s_per_process=results["rate"]["firings_per_s_per_process"],
    )


def inputs_table(results: dict[str, Any]) -> str:
    per_type, points = results["lifecycle"]["per_type"], results["lifecycle"]["points"]
    split = {**results["split"]["per_type"], "deadline firing": results["split"]["firing"]}
    lines = [
        "| message type | Redis commands | round trips | Redis CPU (us) | events "
        "| MONITOR: state / broker / liveness / other | of which in scripts |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, p in [*per_type.items(), ("deadline firing", results["firing"])]:
        s = split[name]
        lines.append(
            f"| {name} | {p['ops']:.1f} | {p['round_trips']:.1f} | {p['redis_cpu_us']:.0f} "
            f"| {p['events_per_message']:.2f} | {s['state_ops']:.1f} / {s['broker_ops']:.1f} / "
            f"{s['liveness_ops']:.1f} / {s['other_ops']:.1f} | {s['script_ops']:.1f} |"
        )
    lines += [
        "",
        "| lifecycle point | used_memory / order (B) | keys / order (B) | pending deadlines "
        "| per key kind (B) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, p in points.items():
        kinds = ", ".join(f"{k} {v:,.0f}" for k, v in p["key_bytes"].items() if v >= 0.5)
        lines.append(
            f"| {name} | {p['bytes_per_order']:,.0f} | {p['key_bytes_per_order']:,.0f} "
            f"| {p['pending_deadlines_per_order']:.2f} | {kinds} |"
        )
    f, r, life = results["firing"], results["rate"], results["lifecycle"]
    lines += [
        "",
        f"- pending deadline: schedule entry {f['schedule_entry_bytes']:,.0f} B; an order with "
        f"one pending deadline (minimal state) {f['bytes_per_order_one_deadline']:,.0f} B",
        f"- messages/s per worker process: {r['messages_per_s_per_process']:,.1f} "
        f"({r['messages_source']}); firings/s per process: "
        f"{r['firings_per_s_per_process']:,.1f} ({r['firings_source']})",
        f"- Redis commands per Redis CPU-second (lifecycle, all types): "
        f"{life['commands_per_cpu_second']:,.0f}",
        f"- idle worker + beat: {results['idle']['ops']:.0f} commands/s, "
        f"{results['idle']['cpu'] * 100:.1f} % of a Redis core (mostly fetch polls; not "
        "subtracted from busy phases, see docs/capacity.md)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders in the lifecycle run")
    parser.add_argument("--fire", type=int, default=1000, help="deadlines in the firing run")
    parser.add_argument("--rate-orders", type=int, default=400, help="orders of the -c 1 drain")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle baseline")
    parser.add_argument("--split-orders", type=int, default=300, help="orders of the MONITOR "
                        "pass (split by key and origin)")  # fmt: skip
    parser.add_argument("--return-rate", type=float, default=Assumptions.return_rate)
    parser.add_argument("--firings-per-order", type=float, default=Assumptions.firings_per_order)
    parser.add_argument("--active-days", type=float, default=Assumptions.active_days)
    parser.add_argument("--retention-days", type=float, default=Assumptions.retention_days)
    parser.add_argument("--measure-rate", action="store_true", help="drain even if "
                        "bench/results/throughput.json exists")  # fmt: skip
    parser.add_argument("--throughput", type=Path, default=ROOT / "bench/results/throughput.json")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/capacity.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    server = start_embedded_redis(data_dir=workdir / "redis", port=0)
    bench = CapacityBench(workdir, server, concurrency=2)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "command": "bench/capacity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    say(f"embedded Redis {server.url} (data in {workdir})")
    one = redis.BlockingConnectionPool.from_url(server.url, max_connections=1)
    phases = Phases(bench, redis.Redis(connection_pool=one))  # one connection: MONITOR skips it
    try:
        bench.start_worker("ours", phases.env())
        bench.start_beat()
        results["idle"] = phases.idle(args.idle)
        results["lifecycle"] = phases.lifecycle(args.orders, HAPPY + RETURN, POINTS)
        results["firing"] = phases.firing(args.fire)
        phases.start_monitor()  # a second, smaller pass: MONITOR costs Redis CPU and memory
        results["idle_monitor"] = phases.idle(args.idle)
        split = phases.lifecycle(args.split_orders, HAPPY + RETURN, POINTS, "split")
        results["split"] = {"per_type": split["per_type"], "firing": phases.firing(
            min(args.fire, args.split_orders), "fsplit")}  # fmt: skip
        phases.stop_monitor()
        bench.stop_all()
        results["rate"] = phases.rates(args, throughput_rate(args.throughput), HAPPY, RETURN)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        phases.stop_monitor()
        bench.stop_all()
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    assumptions = Assumptions(
        return_rate=args.return_rate,
        firings_per_order=args.firings_per_order,
        active_days=args.active_days,
        retention_days=args.retention_days,
    )
    results["model"] = model(build_inputs(results, assumptions), assumptions)
    results["seconds"] = time.perf_counter() - started
    say("\nMeasured inputs\n\n" + inputs_table(results))
    say("\nModel (assumptions: " + json.dumps(results["model"]["assumptions"]) + ")\n")
    say(table(results["model"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    say(f"\ntotal {results['seconds']:.0f} s; results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
