"""`aftersales run`: embedded Redis (when needed), one worker and one beat, supervised.

docs/operations.md, processes. Every child runs in its own session, so a terminal Ctrl-C reaches
only this process, which then stops the children in a fixed order: the worker first (it
finishes its current tasks; late acks hand back the rest), then beat, then Redis (which
fsyncs its AOF). Children also get SIGTERM from the kernel if this process dies (see
`child_dies_with_parent`), so nothing is left running either way. If a child exits on
its own, the others are stopped and the run ends with a non-zero status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from worker.adapters import topology
from worker.cli.embedded_redis import EmbeddedRedis, child_dies_with_parent, start_embedded_redis
from worker.redis_urls import redacted

# A warm shutdown waits for running tasks; ours take milliseconds, a slow label at most
# seconds. Past this the worker is killed: late acks put its messages back.
WORKER_GRACE = 30.0
# Beat only has to close its schedule file.
BEAT_GRACE = 10.0
POLL_INTERVAL = 0.2


def worker_command(concurrency: int, loglevel: str) -> list[str]:
    queues = ",".join(queue.name for queue in topology.CONSUMED)
    return [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--loglevel", loglevel, "--concurrency", str(concurrency), "-Q", queues,
    ]  # fmt: skip


def beat_command(schedule: Path, loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker", "beat",
        "--loglevel", loglevel, "--schedule", str(schedule),
    ]  # fmt: skip


@dataclass
class Child:
    """A supervised child process that leads its own process group."""

    name: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, name: str, command: list[str], env: Mapping[str, str]) -> Child:
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=child_dies_with_parent(),
        )
        return cls(name, process)

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self, grace: float, hurry: HurryFlag | None = None) -> int:
        """SIGTERM, wait up to `grace` (less if `hurry` is raised), then SIGKILL the group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.process.poll() is None and time.monotonic() < deadline:
                if hurry is not None and hurry.raised:
                    break
                time.sleep(0.05)
        # The group also holds the worker's pool processes, which must not outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()


@dataclass
class HurryFlag:
    """Set by a second Ctrl-C: stop waiting for graceful shutdowns."""

    raised: bool = False


@dataclass
class Runner:
    var_dir: Path
    concurrency: int
    loglevel: str
    redis_port: int | None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    stop_signal: int | None = None
    hurry: HurryFlag = field(default_factory=HurryFlag)
    _redis_server: EmbeddedRedis | None = field(default=None, init=False, repr=False)

    def run(self) -> int:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self._signals_caught(), self._redis() as redis_url:
            env = {**self.env, "AFTERSALES_REDIS_URL": redis_url}
            children: list[Child] = []
            try:
                if self.stop_signal is None:
                    children.append(
                        Child.start("worker", worker_command(self.concurrency, self.loglevel), env)
                    )
                    schedule = self.var_dir / "celerybeat-schedule"
                    children.append(Child.start("beat", beat_command(schedule, self.loglevel), env))
                    pids = ", ".join(f"{c.name} pid {c.process.pid}" for c in children)
                    say(f"started {pids} (concurrency {self.concurrency}); Ctrl-C stops all")
                    say(
                        "to see it work, in another terminal: python3 dev.py demo "
                        "(or aftersales demo)"
                    )
                return self._supervise(children)
            finally:
                # Worker first, then beat; Redis stops when the `with` above closes.
                for child in children:
                    grace = WORKER_GRACE if child.name == "worker" else BEAT_GRACE
                    status = child.stop(grace, self.hurry)
                    say(f"{child.name} stopped (exit {status})")

    def _supervise(self, children: list[Child]) -> int:
        while self.stop_signal is None:
            for child in children:
                status = child.exited()
                if status is not None:
                    say(f"{child.name} exited unexpectedly (exit {status}); stopping the rest")
                    return 1
            if self._redis_server is not None and not self._redis_server.running():
                say("embedded Redis exited unexpectedly; stopping the rest")
                return 1
            time.sleep(POLL_INTERVAL)
        say(f"{signal.Signals(self.stop_signal).name} received; stopping worker, beat, Redis")
        return 0

    @contextlib.contextmanager
    def _redis(self) -> Iterator[str]:
        given = self.env.get("AFTERSALES_REDIS_URL")
        if given:
            say(f"using AFTERSALES_REDIS_URL={redacted(given)}")
            if self.redis_port is not None:
                say("--redis-port ignored: no embedded Redis when AFTERSALES_REDIS_URL is set")
            yield given
            return
        server = start_embedded_redis(self.var_dir / "redis", port=self.redis_port)
        self._redis_server = server
        url_file = self.var_dir / "redis.url"
        try:
            _write_atomically(url_file, server.url + "\n")
            say(f"embedded Redis {server.url} (data in {server.data_dir}, pid {server.pid})")
            say(f"producers: AFTERSALES_REDIS_URL={server.url} (also written to {url_file})")
            yield server.url
        finally:
            # A stale file would send producers and CLIs to a dead port.
            with contextlib.suppress(OSError):
                if url_file.read_text().strip() == server.url:
                    url_file.unlink()
            status = server.stop()
            self._redis_server = None
            say(f"embedded Redis stopped (exit {status})")

    @contextlib.contextmanager
    def _signals_caught(self) -> Iterator[None]:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.stop_signal is None:
                self.stop_signal = signum
            else:
                self.hurry.raised = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)


def say(text: str) -> None:
    print(f"aftersales: {text}", flush=True)
