"""The measuring phases of bench/capacity.py (idle, lifecycle, firing, rates), on
bench/deadlines.py's Bench (embedded Redis, real worker and beat processes)."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from deadlines import (
    FAR,
    Bench,
    _NoPublisher,
    _PipelinedStore,
    placed_body,
    say,
    wait_for,
)
from deadlines import tree_cpu as process_tree_cpu
from redis_meter import Monitor, Snapshot, broker_bytes, client_address, delta, memory_usage

from tests.support import messages as wire

HORIZON = "PT5S"  # arm firing-phase deadlines 5 s ahead, so placing them ends before arming
ARM_LEAD = 6.0  # seconds before due when arming may start: the horizon plus one tick
SAMPLE = 50  # orders whose keys are measured one by one with MEMORY USAGE (exact, SAMPLES 0)
NOTIFICATIONS = "aftersales.notifications"  # bound '#' to aftersales.events: every event once
KINDS = ("order", "seen", "digests", "inflight", "timeline")
GLOBAL = {
    "schedule": "aftersales:deadlines",
    "armed": "aftersales:deadlines:armed",
    "claims": "aftersales:deadlines:held",
    "resends": "aftersales:deadlines:resends",
    "outbox": "aftersales:outbox:pending",
    "outbox entries": "aftersales:outbox:entries",
}
FIELDS: dict[str, dict[str, Any]] = {
    "buyer.return_requested": {
        "request_id": "r1",
        "kind": "return_and_refund",
        "reason": "damaged",
        "method": "self_arrange",  # drop_off renders a label (bench/labels.py measures it)
    },
    "seller.return_approved": {"request_id": "r1"},
    "buyer.return_tracking_submitted": {
        "request_id": "r1",
        "carrier": "RM",
        "tracking_number": "T1",
    },
    "seller.return_received": {"request_id": "r1"},
    "order.shipped": {"tracking_number": "TRK1"},
}


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its descendants (a worker and its pool)."""
    return sum(process_tree_cpu(pid))


class CapacityBench(Bench):
    def ours_env(self) -> dict[str, str]:
        env = super().ours_env()
        env["AFTERSALES_DEADLINE_HORIZON"] = HORIZON
        return env


def body(message_type: str, order_id: str, at: datetime) -> dict[str, Any]:
    if message_type == "order.placed":
        return wire.placed(order_id, at)
    return wire.message(message_type, order_id, at, **FIELDS.get(message_type, {}))


class Phases:
    def __init__(self, bench: Bench, r: redis.Redis) -> None:
        self.bench, self.r = bench, r  # r: one connection, so MONITOR can leave it out
        self.own: Counter[str] = Counter()  # commands this bench sent inside a window
        self.own_trips = 0
        self.monitor: Monitor | None = None
        self.idle_rates: dict[str, Any] = {}
        from celery import Celery

        from worker.contract.client import task_for_type

        self.client = Celery("capacity-producer", broker=bench.url, set_as_current=False)
        self.routes = task_for_type()

    def env(self) -> dict[str, str]:
        return self.bench.ours_env()

    def start_monitor(self) -> None:
        self.monitor = Monitor(self.bench.url, {client_address(self.r)})
        self.monitor.start()

    def stop_monitor(self) -> None:
        if self.monitor:
            self.monitor.stop()
            self.monitor = None

    # --- windows ---------------------------------------------------------------------------

    def snap(self) -> Snapshot:
        return Snapshot.take(self.r)

    def window(
        self, before: Snapshot, after: Snapshot, count: int, idle_for: float = 0.0
    ) -> dict[str, Any]:
        """Per-unit cost between two snapshots, less the idle rate for `idle_for` seconds
        of it known to be idle. A busy phase is not corrected: most of the idle rate is
        the reliable fetch polling empty queues every 50 ms, which a busy consumer does
        not do; what stays (tick, beats: ~30 commands/s) is counted, an upper bound."""
        d = delta(before, after, self.own)
        seconds, idle = idle_for, self.idle_rates
        split: Counter[tuple[str, str, str]] = Counter()
        if self.monitor:
            self.monitor.wait_until(after.server_time)
            split = self.monitor.between(before.server_time, after.server_time)

        def net(value: float, per_s: float) -> float:
            return max(0.0, value - per_s * seconds) / count

        by_class: Counter[str] = Counter()
        script = 0
        for (origin, kind, _), n in split.items():
            by_class[kind] += n
            script += n if origin == "script" else 0
        commands = {
            k: net(v, idle.get("commands", {}).get(k, 0.0)) for k, v in d["commands"].items()
        }
        self.own.clear()
        trips, self.own_trips = self.own_trips + 3, 0  # + this snapshot's TIME, INFO, INFO
        return {
            "count": count,
            "seconds": d["seconds"],
            "idle_subtracted_s": seconds,
            "ops": net(d["total_commands"], idle.get("ops", 0.0)),
            "ops_raw": d["total_commands"] / count,
            "script_ops": net(script, idle.get("script", 0.0)),
            "state_ops": net(by_class["state"], idle.get("state", 0.0)),
            "broker_ops": net(by_class["broker"], idle.get("broker", 0.0)),
            "liveness_ops": net(by_class["liveness"], idle.get("liveness", 0.0)),
            "other_ops": net(by_class["other"], idle.get("other", 0.0)),
            "round_trips": net(d["reads"] - trips, idle.get("reads", 0.0)),
            "redis_cpu_us": net(d["cpu_seconds"], idle.get("cpu", 0.0)) * 1e6,
            "commands": {k: round(v, 2) for k, v in sorted(commands.items()) if v >= 0.005},
            "monitor_split": {"/".join(k): n / count for k, n in sorted(split.items())},
        }

    def idle(self, seconds: float) -> dict[str, Any]:
        say(f"[idle] {seconds:g} s of worker and beat with nothing to do")
        self.idle_rates = {}  # measured afresh, not less the last idle rate
        time.sleep(3)
        before = self.snap()
        time.sleep(seconds)
        after = self.snap()
        w = self.window(before, after, 1)
        rates = {
            k: w[k] / w["seconds"]
            for k in ("ops", "script_ops", "state_ops", "broker_ops", "liveness_ops", "other_ops")
        }
        self.idle_rates = {
            "ops": rates["ops"],
            "script": rates["script_ops"],
            "state": rates["state_ops"],
            "broker": rates["broker_ops"],
            "liveness": rates["liveness_ops"],
            "other": rates["other_ops"],
            "reads": w["round_trips"] / w["seconds"],
            "cpu": w["redis_cpu_us"] / 1e6 / w["seconds"],
            "commands": {k: v / w["seconds"] for k, v in w["commands"].items()},
        }
        say(
            f"  idle: {rates['ops']:.0f} commands/s, {self.idle_rates['reads']:.0f} reads/s, "
            f"{self.idle_rates['cpu'] * 100:.1f} % of a core"
            + (f"; by key: {w['monitor_split']}" if self.monitor else "")
        )
        return self.idle_rates

    # --- sending and waiting -------------------------------------------------------------

    def send(self, bodies: list[dict[str, Any]]) -> None:
        with self.client.producer_or_acquire() as producer:
            for b in bodies:
                self.client.send_task(
                    self.routes[b["type"]],
                    args=[b],
                    queue="aftersales.inbound",
                    producer=producer,
                )

    def wait_applied(self, bodies: list[dict[str, Any]], timeout: float = 900) -> None:
        pending = {(b["order_id"], b["message_id"]) for b in bodies}

        def done() -> bool:
            pipe = self.r.pipeline(transaction=False)
            todo = sorted(pending)
            for order_id, message_id in todo:
                pipe.sismember(f"aftersales:seen:{{{order_id}}}", message_id)
            self.own["sismember"] += len(todo)
            self.own_trips += 1
            for item, seen in zip(todo, pipe.execute(), strict=True):
                if seen:
                    pending.discard(item)
            if pending:
                return False
            self.own["zcard"] += 1
            self.own_trips += 1
            return int(self.r.zcard(GLOBAL["outbox"])) == 0  # published and confirmed

        wait_for(done, timeout, f"{len(bodies)} messages applied", 0.25)

    # --- memory --------------------------------------------------------------------------

    def memory(self, orders: list[str]) -> dict[str, Any]:
        info = self.r.info("memory")
        return {"used": int(info["used_memory"]), "broker": broker_bytes(self.r), "n": len(orders)}

    def point(self, base: dict[str, Any], orders: list[str]) -> dict[str, Any]:
        now = self.memory(orders)
        n = len(orders)
        sample = orders[:: max(1, n // SAMPLE)][:SAMPLE]
        per_kind = {
            kind: statistics.fmean(
                memory_usage(self.r, f"aftersales:{kind}:{{{o}}}") for o in sample
            )
            for kind in KINDS
        }
        shared = {name: memory_usage(self.r, key) / n for name, key in GLOBAL.items()}
        pending = int(self.r.zcard(GLOBAL["schedule"])) + int(self.r.zcard(GLOBAL["armed"]))
        kinds: Counter[str] = Counter()
        sizes = []
        for o in sample:
            raw = self.r.hget(f"aftersales:order:{{{o}}}", "state") or b"{}"
            sizes.append(len(raw))
            for d in json.loads(raw).get("deadlines", {}).values():
                kinds[d.get("kind", "?")] += 1
        return {
            "bytes_per_order": (now["used"] - base["used"] - (now["broker"] - base["broker"])) / n,
            "key_bytes": {**per_kind, **shared},
            "key_bytes_per_order": sum(per_kind.values()) + sum(shared.values()),
            "state_json_bytes": statistics.fmean(sizes),
            "pending_deadlines_per_order": pending / n,
            "deadline_kinds_per_order": {k: v / len(sample) for k, v in kinds.items()},
            "broker_bytes": now["broker"] - base["broker"],
        }

    # --- phases --------------------------------------------------------------------------

    def lifecycle(
        self, n: int, types: tuple[str, ...], points: dict[str, str], prefix: str = "cap"
    ) -> dict[str, Any]:
        say(f"[lifecycle {prefix}] {n:,} orders, {len(types)} message types one after the other")
        orders = [f"{prefix}-{i:07d}" for i in range(n)]
        memory = not self.monitor  # MONITOR's output buffer would count as used_memory
        start = datetime.now(UTC) - timedelta(hours=1)
        base = self.memory(orders)
        per_type: dict[str, dict[str, Any]] = {}
        at: dict[str, dict[str, Any]] = {}
        cpu, commands = 0.0, 0.0
        for step, message_type in enumerate(types):
            bodies = [body(message_type, o, start + timedelta(minutes=step)) for o in orders]
            events0 = int(self.r.llen(NOTIFICATIONS))
            before = self.snap()
            self.send(bodies)
            self.wait_applied(bodies)
            after = self.snap()
            w = self.window(before, after, n)
            w["events_per_message"] = (int(self.r.llen(NOTIFICATIONS)) - events0) / n
            w["messages_per_s"] = n / w["seconds"]
            cpu += after.cpu - before.cpu
            commands += sum(after.commands.values()) - sum(before.commands.values())
            per_type[message_type] = w
            if memory:
                at[message_type] = self.point(base, orders)
            say(
                f"  {message_type}: {w['ops']:.1f} ops, {w['round_trips']:.1f} round trips, "
                f"{w['redis_cpu_us']:.0f} us Redis CPU per message"
                + (f"; {at[message_type]['bytes_per_order']:,.0f} B/order" if memory else "")
            )
        return {
            "orders": n,
            "per_type": per_type,
            "after_type": at,
            "points": {name: at[t] for name, t in points.items()} if memory else {},
            "commands_per_cpu_second": commands / cpu if cpu else 0.0,
        }

    def place_for_firing(self, m: int, prefix: str, lead: float) -> float:
        """m unpaid orders through the service path (commits pipelined); their
        unpaid_expiry is due `lead` seconds from now. Returns the due epoch."""
        from schemas.inbound import ANY_MESSAGE
        from worker.adapters.redis_store import RedisStore
        from worker.service_layer.service import Service
        from worker.settings import load_policy

        store = _PipelinedStore(RedisStore(redis.Redis.from_url(self.bench.url)))
        service = Service(store, _NoPublisher(), load_policy(None))
        due = time.time() + lead
        placed_at = datetime.fromtimestamp(due, UTC) - FAR
        for i in range(m):
            message = ANY_MESSAGE.validate_python(placed_body(f"{prefix}-{i:06d}", placed_at))
            service.handle_message(message)
        store.flush()
        return due

    def wait_fired(self, m: int, lateness0: int, timeout: float = 600) -> None:
        def done() -> bool:
            self.own.update(llen=1, zcard=3)
            self.own_trips += 4
            fired = int(self.r.llen("aftersales:deadlines:lateness")) - lateness0
            left = int(self.r.zcard(GLOBAL["schedule"])) + int(self.r.zcard(GLOBAL["armed"]))
            return fired >= m and left == 0 and int(self.r.zcard(GLOBAL["outbox"])) == 0

        wait_for(done, timeout, f"{m} deadlines fired", 0.25)

    def firing(self, m: int, prefix: str = "fire") -> dict[str, Any]:
        say(f"[firing {prefix}] {m:,} unpaid orders whose expiry falls due together")
        lead = ARM_LEAD + 2 + m / 400  # placing (~400/s here) must end before arming
        base = self.memory([""] * m)
        lateness0 = int(self.r.llen("aftersales:deadlines:lateness"))
        due = self.place_for_firing(m, prefix, lead)
        placed = self.memory([""] * m)
        entry = memory_usage(self.r, GLOBAL["schedule"]) / max(1, self.r.zcard(GLOBAL["schedule"]))
        events0 = int(self.r.llen(NOTIFICATIONS))
        before = self.snap()
        if time.time() > due - ARM_LEAD:
            say("  !! placing took longer than the lead: some were armed while placing")
        idle_for = max(0.0, due - ARM_LEAD - time.time())  # nothing to do until armed
        self.wait_fired(m, lateness0)
        after = self.snap()
        w = self.window(before, after, m, idle_for)
        w["events_per_message"] = (int(self.r.llen(NOTIFICATIONS)) - events0) / m
        w["all_fired_after_due_s"] = time.time() - due
        w["schedule_entry_bytes"] = entry
        w["bytes_per_order_one_deadline"] = (
            placed["used"] - base["used"] - (placed["broker"] - base["broker"])
        ) / m
        say(
            f"  {w['ops']:.1f} ops, {w['round_trips']:.1f} round trips, "
            f"{w['redis_cpu_us']:.0f} us Redis CPU per firing; schedule entry {entry:.0f} B"
        )
        return w

    def rates(
        self,
        args: Any,
        known: tuple[float, str] | None,
        happy: tuple[str, ...],
        back: tuple[str, ...],
    ) -> dict[str, Any]:
        """Per worker process: what one drain measured, by the wall clock and per CPU-second
        of the worker (its own core: what the model uses, the wall rate on a shared machine
        measures the other jobs too)."""
        out: dict[str, Any] = {"drain": self.drain_rate(args, happy, back)}
        out["fire"] = self.fire_rate(args.fire)
        if known and not args.measure_rate:
            out["messages_per_s_per_process"], out["messages_source"] = known
        else:
            out["messages_per_s_per_process"] = out["drain"]["per_cpu_second"]
            out["messages_source"] = (
                f"drain of {args.rate_orders} orders' messages by one `-c 1` worker: "
                f"{out['drain']['per_cpu_second']:.0f} per worker CPU-second "
                f"(wall clock on this shared machine: {out['drain']['wall']:.1f}/s)"
            )
        out["firings_per_s_per_process"] = out["fire"]["per_cpu_second"]
        out["firings_source"] = (
            f"{args.fire} due together, one `-c 1` worker: per worker CPU-second "
            f"(wall clock: {out['fire']['wall']:.1f}/s)"
        )
        return out

    def drain_rate(
        self, args: Any, happy: tuple[str, ...], back: tuple[str, ...]
    ) -> dict[str, float]:
        k = args.rate_orders
        say(f"[rate] {k} orders' messages queued, then drained by one worker process")
        orders = [f"rate-{i:06d}" for i in range(k)]
        start = datetime.now(UTC) - timedelta(hours=1)
        returned = set(orders[: round(k * args.return_rate)])
        bodies = []
        for step, t in enumerate(happy + back):
            who = orders if t in happy else [o for o in orders if o in returned]
            bodies += [body(t, o, start + timedelta(minutes=step)) for o in who]
        self.bench.start_beat()
        worker = self.bench.start_worker("ours", self.env(), concurrency=1)
        # Sent to the running worker, counted from the first send: queued before its start,
        # they were drained (all of them, at a few hundred) before it said it was ready.
        t0, cpu0 = time.perf_counter(), tree_cpu(worker.pid)
        self.send(bodies)
        self.wait_applied(bodies)
        took, cpu = time.perf_counter() - t0, tree_cpu(worker.pid) - cpu0
        sent = len(bodies)
        out = {"messages": sent, "seconds": took, "wall": sent / took, "cpu_seconds": cpu}
        out["per_cpu_second"] = sent / max(cpu, 1 / os.sysconf("SC_CLK_TCK"))
        say(f"  {sent} messages in {took:.1f} s, {cpu:.1f} worker CPU-s: {out}")
        self.bench.stop_all()
        return out

    def fire_rate(self, m: int) -> dict[str, float]:
        say(f"[rate] {m} deadlines due together, one worker process")
        self.bench.start_beat()
        worker = self.bench.start_worker("ours", self.env(), concurrency=1)
        lateness0 = int(self.r.llen("aftersales:deadlines:lateness"))
        due = self.place_for_firing(m, "rate-fire", 8 + m / 400)
        wait_for(lambda: time.time() >= due, 120, "the due time", 0.05)
        cpu0 = tree_cpu(worker.pid)
        self.wait_fired(m, lateness0)
        took, cpu = time.time() - due, tree_cpu(worker.pid) - cpu0
        out = {"firings": m, "seconds": took, "wall": m / took, "cpu_seconds": cpu}
        out["per_cpu_second"] = m / cpu
        say(f"  {m} fired {took:.1f} s after due, {cpu:.1f} worker CPU-s: {out}")
        self.bench.stop_all()
        return out
