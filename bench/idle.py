"""What an idle worker and beat do: CPU, Redis commands per second, and (optionally) where
the CPU goes, by py-spy.

    .venv/bin/python bench/idle.py [--seconds 30] [--profile] [--concurrency 2]

Starts an embedded Redis, one worker as deployed (Celery's worker heartbeat, gossip and
mingle; inbound, deadlines and control queues) and `celery beat`, lets them settle, then
for --seconds: the CPU of the worker's process tree and of beat (% of one core), every
command Redis received (`MONITOR`, by command; scripts by their first comment line), and
with --profile `py-spy record` on the worker (its pool too) and on beat, written to
bench/results/idle-profile-{worker,beat}.txt (collapsed stacks) with a top of self time.
bench/throughput.py measures idle the same way beside its baselines; this one says why.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deadlines import ROOT, say
from throughput import (
    INBOUND,
    OURS_IDLE,
    RESULTS,
    ThroughputBench,
    cpu_ns,
    free_port_pair,
    top_self,
)

from worker.cli.embedded_redis import start_embedded_redis


def tasks(pids: list[int]) -> dict[str, tuple[int, int]]:
    """Every thread of the processes and their descendants: "pid/tid" -> (CPU ns, voluntary
    context switches, i.e. times it went to sleep: about its wake-ups)."""
    from deadlines import children_map

    tree, found, todo = children_map(), {}, list(pids)
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                ns = int((task / "schedstat").read_text().split()[0])
                status = (task / "status").read_text()
            except (OSError, ValueError, IndexError):
                continue
            switches = next(int(line.split()[1]) for line in status.splitlines()
                            if line.startswith("voluntary_ctxt_switches"))  # fmt: skip
            found[f"{pid}/{task.name}"] = (ns, switches)
    return found


def script_names() -> dict[str, str]:
    """sha1 -> file name of every Lua script of the worker, to name EVALSHA lines."""
    names = {}
    for path in (ROOT / "worker").rglob("*.lua"):
        names[hashlib.sha1(path.read_bytes()).hexdigest()] = path.name
    return names


class Monitor(threading.Thread):
    """`MONITOR` on its own socket: counts commands (EVALSHA by script) until stopped."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection((host, port))
        self.sock.sendall(b"MONITOR\r\n")
        self.counts: Counter[str] = Counter()
        self.scripts = script_names()
        self.counting = False
        self.stopped = False

    def run(self) -> None:
        buffer = b""
        while not self.stopped:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            if self.counting:
                for line in lines:
                    self._count(line.decode(errors="replace"))

    def _count(self, line: str) -> None:
        # +1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "sha" ...
        if not line.startswith("+") or "] " not in line:
            return
        words = line.split("] ", 1)[1].split('" "')
        command = words[0].strip('"').upper()
        if command in ("EVALSHA", "EVAL") and len(words) > 1:
            arg = words[1].strip('"')
            command += " " + self.scripts.get(arg, arg[:12] if command == "EVALSHA" else "(text)")
        self.counts[command] += 1

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


def py_spy(pid: int, out: Path, seconds: float, rate: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        say("  (py-spy not installed: no profile)")
        return None
    argv = [spy, "record", "--subprocesses", "--nonblocking", "-r", str(rate), "-d",
            str(int(seconds)), "-p", str(pid), "-f", "raw", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle window (default 30)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c (default 2)")
    parser.add_argument("--profile", action="store_true", help="py-spy on worker and beat")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples/s (500)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set for the worker and beat (repeatable)",
    )
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before measuring")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    server = start_embedded_redis(data_dir=workdir / "redis", port=0)
    bench = ThroughputBench(workdir, SimpleNamespace(url=server.url), args.concurrency)  # type: ignore[arg-type]
    bench.state_url = bench.broker_url = server.url
    bench.redis_pid = server.pid
    bench.metrics_port = free_port_pair()  # as deployed: worker and beat serve /metrics
    extra = dict(item.split("=", 1) for item in args.env)
    ours_env = bench.ours_env
    bench.ours_env = lambda: {**ours_env(), **extra}  # type: ignore[method-assign]
    try:
        worker = bench.start("idle-ours", "worker", f"{INBOUND},{OURS_IDLE}", bench.ours_env(),
                             1, deployed=True).procs[0]  # fmt: skip
        beat = bench.start_beat()
        time.sleep(args.settle)  # start-up settles: beat's first ticks, the pool idle
        host, port = server.url.split("//")[1].split("/")[0].split(":")
        monitor = Monitor(host, int(port))
        monitor.start()
        spies = []
        if args.profile:
            RESULTS.mkdir(parents=True, exist_ok=True)
            for name, pid in (("worker", worker.pid), ("beat", beat.pid)):
                out = RESULTS / f"idle-profile-{name}.txt"
                spies.append((name, out, py_spy(pid, out, args.seconds, args.rate)))
        time.sleep(0.5)
        monitor.counting = True
        pids = {"worker": worker.pid, "beat": beat.pid, "redis": server.pid}
        cpu0 = {name: cpu_ns([pid]) for name, pid in pids.items()}
        threads0 = {name: tasks([pid]) for name, pid in pids.items()}
        start = time.perf_counter()
        time.sleep(args.seconds)
        elapsed = time.perf_counter() - start
        monitor.counting = False
        threads1 = {name: tasks([pid]) for name, pid in pids.items()}
        cpu = {name: 100 * (cpu_ns([pid]) - cpu0[name]) / 1e9 / elapsed
               for name, pid in pids.items()}  # fmt: skip
        monitor.stop()
        for _, _, spy in spies:
            if spy is not None:
                spy.wait(args.seconds + 60)
    finally:
        bench.stop_all()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"idle over {elapsed:.0f} s, % of one core: worker {cpu['worker']:.2f} + beat "
        f"{cpu['beat']:.2f} = {cpu['worker'] + cpu['beat']:.2f} (goal <= 0.3); "
        f"redis {cpu['redis']:.2f}")  # fmt: skip
    for name in ("worker", "beat"):
        say(f"{name} threads (pid/tid: % of a core, sleeps a second):")
        for task, (ns, switches) in threads1[name].items():
            ns0, switches0 = threads0[name].get(task, (0, 0))
            say(f"  {task:>14}  {100 * (ns - ns0) / 1e9 / elapsed:5.3f} %  "
                f"{(switches - switches0) / elapsed:5.2f}/s")  # fmt: skip
    total = sum(monitor.counts.values())
    say(f"Redis commands: {total / elapsed:.2f}/s")
    for command, count in monitor.counts.most_common():
        say(f"  {count / elapsed:6.2f}/s  {command}")
    for name, out, spy in spies:
        if spy is not None and out.exists():
            say(f"py-spy {name} ({out}), self time, share of samples:")
            for frame, share in top_self(out, 12):
                say(f"  {share:5.1f} %  {frame}")
            say(f"  {_samples(out)} samples")
    return 0


def _samples(collapsed: Path) -> int:
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            total += int(count)
    return total


if __name__ == "__main__":
    sys.exit(main())
