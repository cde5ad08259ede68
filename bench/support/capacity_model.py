"""The capacity model of docs/capacity.md: from measured per-message, per-firing and
per-order costs to workers, Redis memory, Redis primaries and broker load for a given
number of orders a day. Pure arithmetic; bench/capacity.py feeds it measured inputs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

DAY = 86_400.0
GB = 1e9
SIZES = (100_000, 1_000_000, 10_000_000, 100_000_000)  # orders a day, as issue 11 asks


@dataclass(frozen=True)
class Assumptions:
    peak_factor: float = 10.0  # issue 11: peak second = 10x the day's average second
    return_rate: float = 0.15  # share of orders with a return (e-commerce: 10-30 %)
    firings_per_order: float = 0.1  # deadlines that lapse (unpaid, unanswered): see the doc
    headroom: float = 0.3  # workers sized to run at most 70 % busy at peak
    active_days: float = 10.0  # placed .. delivered (~5 d), returns ~2 weeks more: see the doc
    retention_days: float = 60.0  # AFTERSALES_RETENTION's default (issue 11 part 1)
    primary_memory_gb: float = 25.0  # usable dataset per primary: see docs/capacity.md
    primary_cpu: float = 0.5  # main-thread core share a primary may use at peak (half)


@dataclass(frozen=True)
class Inputs:
    """Measured (bench/capacity.py) costs; every field is per message, firing or order."""

    messages_per_order: float
    firings_per_order: float
    ops_per_message: float
    ops_per_firing: float
    round_trips_per_message: float
    round_trips_per_firing: float
    redis_cpu_us_per_message: float
    redis_cpu_us_per_firing: float
    broker_ops_per_message: float
    broker_ops_per_firing: float
    events_per_order: float
    bytes_per_order_at_rest: float
    messages_per_s_per_process: float
    firings_per_s_per_process: float


def messages_per_order(happy: int, returns: int, rate: float) -> float:
    return happy + rate * returns


def row(daily: int, m: Inputs, a: Assumptions) -> dict[str, Any]:
    avg_msgs = daily * m.messages_per_order / DAY
    peak_msgs = avg_msgs * a.peak_factor
    peak_fires = daily * m.firings_per_order / DAY * a.peak_factor
    busy = peak_msgs / m.messages_per_s_per_process + peak_fires / m.firings_per_s_per_process
    workers = math.ceil(busy / (1 - a.headroom))
    alive = daily * (a.active_days + a.retention_days)
    memory_gb = alive * m.bytes_per_order_at_rest / GB
    ops = peak_msgs * m.ops_per_message + peak_fires * m.ops_per_firing
    trips = peak_msgs * m.round_trips_per_message + peak_fires * m.round_trips_per_firing
    cpu = (peak_msgs * m.redis_cpu_us_per_message + peak_fires * m.redis_cpu_us_per_firing) / 1e6
    by_memory = math.ceil(memory_gb / a.primary_memory_gb)
    by_cpu = math.ceil(cpu / a.primary_cpu)
    return {
        "orders_per_day": daily,
        "avg_messages_per_s": avg_msgs,
        "peak_messages_per_s": peak_msgs,
        "peak_firings_per_s": peak_fires,
        "worker_processes": workers,
        "orders_alive": alive,
        "redis_memory_gb": memory_gb,
        "redis_ops_per_s": ops,
        "redis_round_trips_per_s": trips,
        "redis_cpu_cores": cpu,
        "primaries_for_memory": by_memory,
        "primaries_for_cpu": by_cpu,
        "primaries": max(1, by_memory, by_cpu),
        "limited_by": "memory" if by_memory >= by_cpu else "cpu",
        "broker_messages_in_per_s": peak_msgs + peak_fires,
        "broker_events_out_per_s": daily * m.events_per_order / DAY * a.peak_factor,
        "broker_ops_per_s": peak_msgs * m.broker_ops_per_message
        + peak_fires * m.broker_ops_per_firing,
    }


def model(m: Inputs, a: Assumptions) -> dict[str, Any]:
    return {
        "inputs": asdict(m),
        "assumptions": asdict(a),
        "rows": [row(daily, m, a) for daily in SIZES],
    }


def _n(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        "| orders/day | peak msg/s | peak firings/s | worker processes | orders alive "
        "| Redis memory (GB) | Redis ops/s | Redis round trips/s | Redis CPU (cores) "
        "| primaries (memory / CPU) | broker in msg/s | broker events out/s | broker ops/s |",
        "|" + " ---: |" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['orders_per_day']:,} | {_n(r['peak_messages_per_s'])} "
            f"| {_n(r['peak_firings_per_s'])} | {r['worker_processes']:,} "
            f"| {r['orders_alive']:,.0f} | {_n(r['redis_memory_gb'])} "
            f"| {_n(r['redis_ops_per_s'])} | {_n(r['redis_round_trips_per_s'])} "
            f"| {_n(r['redis_cpu_cores'])} "
            f"| **{r['primaries']}** ({r['primaries_for_memory']} / {r['primaries_for_cpu']}) "
            f"| {_n(r['broker_messages_in_per_s'])} | {_n(r['broker_events_out_per_s'])} "
            f"| {_n(r['broker_ops_per_s'])} |"
        )
    return "\n".join(lines)
