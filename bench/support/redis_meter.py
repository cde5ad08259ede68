"""What a Redis server did between two moments: commands (commandstats, which counts the
commands run inside Lua scripts too), read events (about one per client round trip), CPU
seconds of the server, memory; and, from MONITOR, the same commands split by the keys
they touch (state, broker, liveness) and by origin (sent by a client, or run by a script).

Used by bench/capacity.py. Only reads the server (INFO, MEMORY USAGE, SCAN, MONITOR).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

# Commands the bench itself sends to look (never part of the worker's load).
BENCH_COMMANDS = frozenset(
    {"info", "memory", "scan", "monitor", "client", "config", "dbsize", "time", "ping", "type"}
)
STATE_PREFIXES = (
    "aftersales:order:",
    "aftersales:seen:",
    "aftersales:digests:",
    "aftersales:inflight:",
    "aftersales:timeline:",
    "aftersales:deadlines",
    "aftersales:outbox:",
)
LIVENESS_PREFIX = "aftersales:alive:"
BROKER_STATE_PREFIX = "aftersales:fetch:"  # reliable fetch's records: the broker's, in our names
BUCKET = 0.1  # seconds: MONITOR lines are attributed to a phase by server time, this finely
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_HEAD = re.compile(rb"^(\d+\.\d+) \[\d+ ([^\]]+)\]")


def key_class(key: bytes | str) -> str:
    """state / broker / liveness, by the key's name (worker/adapters/keys.py)."""
    name = key.decode(errors="replace") if isinstance(key, bytes) else key
    if name.startswith(LIVENESS_PREFIX):
        return "liveness"
    if name.startswith(STATE_PREFIXES):
        return "state"
    return "broker"  # kombu's queues, unacked, bindings, fanout; aftersales:fetch:*


@dataclass
class Snapshot:
    at: float
    server_time: float
    commands: Counter[str]
    reads: int
    cpu: float
    used_memory: int

    @classmethod
    def take(cls, r: redis.Redis) -> Snapshot:
        seconds, micros = r.time()
        stats = r.info("commandstats")
        commands: Counter[str] = Counter()
        for name, value in stats.items():
            command = name.removeprefix("cmdstat_").lower()
            if command not in BENCH_COMMANDS:
                commands[command] = int(value["calls"])
        info = r.info()
        return cls(
            at=time.perf_counter(),
            server_time=seconds + micros / 1e6,
            commands=commands,
            reads=int(info.get("total_reads_processed", 0)),
            cpu=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
            used_memory=int(info["used_memory"]),
        )


def delta(before: Snapshot, after: Snapshot, own: Counter[str] | None = None) -> dict[str, Any]:
    """What happened in between, less `own` (commands the bench sent itself)."""
    commands = after.commands.copy()
    commands.subtract(before.commands)
    commands.subtract(own or Counter())
    commands = Counter({k: v for k, v in commands.items() if v > 0})
    return {
        "seconds": after.at - before.at,
        "commands": dict(commands),
        "total_commands": sum(commands.values()),
        "reads": after.reads - before.reads,
        "cpu_seconds": after.cpu - before.cpu,
        "used_memory": after.used_memory - before.used_memory,
    }


def memory_usage(r: redis.Redis, key: str) -> int:
    return int(r.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0)


def broker_bytes(r: redis.Redis) -> int:
    """MEMORY USAGE of every key that is not per-order or schedule state (the queues,
    unacked, bindings, reliable-fetch records): the broker's share of used_memory."""
    total = 0
    for key in r.scan_iter(count=1000):
        if key_class(key) == "broker":
            total += memory_usage(r, key.decode())
    return total


@dataclass
class Monitor:
    """A MONITOR connection read by a thread: counts (bucket, origin, class, command)."""

    url: str
    ignore_addresses: set[str] = field(default_factory=set)
    counts: Counter[tuple[int, str, str, str]] = field(default_factory=Counter)
    last_time: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._client = redis.Redis.from_url(self.url)  # kept: its pool owns the connection
        self._conn = self._client.connection_pool.get_connection()
        self._conn.send_command("MONITOR")
        self._conn.read_response()  # OK
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the connection closes when we stop
            while not self._stop.is_set():
                line = self._conn.read_response(disable_decoding=True)
                if isinstance(line, bytes):
                    self._count(line)

    def _count(self, line: bytes) -> None:
        head = _HEAD.match(line)
        if not head:
            return
        stamp, source = float(head.group(1)), head.group(2).decode()
        if source in self.ignore_addresses:
            return
        args = _ARG.findall(line, head.end())
        if not args:
            return
        command = args[0].decode().lower()
        if command in BENCH_COMMANDS:
            return
        origin = "script" if source == "lua" else "client"
        with self._lock:
            self.counts[(int(stamp / BUCKET), origin, _classify(command, args), command)] += 1
            self.last_time = stamp

    def wait_until(self, server_time: float, timeout: float = 30.0) -> None:
        """Until lines stamped after `server_time` came (bench commands are not counted:
        the caller makes sure the server is doing something, e.g. the worker's beats)."""
        deadline = time.monotonic() + timeout
        while self.last_time < server_time and time.monotonic() < deadline:
            time.sleep(0.05)

    def between(self, start: float, stop: float) -> Counter[tuple[str, str, str]]:
        lo, hi = int(start / BUCKET), int(stop / BUCKET)
        out: Counter[tuple[str, str, str]] = Counter()
        with self._lock:
            counts = list(self.counts.items())
        for (bucket, origin, kind, command), n in counts:
            if lo <= bucket < hi:
                out[(origin, kind, command)] += n
        return out

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._conn.disconnect()


def _classify(command: str, args: list[bytes]) -> str:
    """The class of the first key of a command (EVALSHA/EVAL: its first KEYS entry)."""
    if command in ("evalsha", "eval"):
        return key_class(args[3]) if len(args) > 3 and args[2] != b"0" else "broker"
    if command in ("multi", "exec", "discard", "hello", "select", "auth", "script"):
        return "other"  # transaction brackets, connection set-up, script loading
    if command in ("publish", "subscribe", "psubscribe"):
        return "broker"  # kombu's fanout (pidbox, task events)
    if command in ("brpop", "blpop") or len(args) < 2:
        return "broker"
    return key_class(args[1])


def client_address(r: redis.Redis) -> str:
    """ip:port of this client's (single) connection, as MONITOR prints it."""
    info = r.execute_command("CLIENT", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return next(part[5:] for part in text.split() if part.startswith("addr="))


def count_round_trips() -> Callable[[], int]:
    """Round trips to Redis from this process (store and kombu alike): each single command
    and each pipeline is one `send_packed_command` on a redis-py connection. Returns a
    function that reads the count so far. Used by bench/inbound_cost.py and
    bench/firing_profile.py."""
    from redis.connection import AbstractConnection

    count = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    return lambda: count[0]
