"""Real `celery` processes for integration tests, and checks that none is left over.

Each process leads its own process group (so the worker's pool children can be killed
with it) and gets SIGTERM from the kernel if the test run dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from worker.cli.embedded_redis import child_dies_with_parent

# The queues a worker consumes (worker/adapters/topology.py CONSUMED), spelled out: tests check
# the contract, not the module.
WORKER_QUEUES = ("aftersales.inbound", "aftersales.deadlines", "aftersales.control")
# Importing Celery and the app on 2 slow cores takes a few seconds; allow for a loaded CI.
START_TIMEOUT = 45.0
# A warm shutdown finishes running tasks; ours are short.
STOP_GRACE = 5.0


class CeleryProcess:
    """A `celery` child process started by a fixture.

    `name` is the worker's full node name (`<unique>@<host>`) for workers, `None` for beat.
    """

    def __init__(
        self, kind: str, process: subprocess.Popen[bytes], log_path: Path, name: str | None
    ) -> None:
        self.kind = kind
        self.process = process
        self.log_path = log_path
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until `text` appears in the log; AssertionError with the log otherwise."""
        wait_until(lambda: text in self.log_text(), timeout, lambda: self._failure(text))

    def kill9(self, whole_group: bool = True) -> None:
        """Crash it: SIGKILL, no shutdown at all, as an OOM kill or a power cut would.

        `whole_group=True` (default) also kills the worker's pool processes, as losing the
        host would; `False` kills only the main process and leaves the pool to notice.
        """
        with contextlib.suppress(ProcessLookupError):
            if whole_group:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM (Celery's warm shutdown), up to `grace` seconds, then SIGKILL the group.

        Idempotent; returns the exit status (negative: killed by that signal).
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.process.wait(10)

    def discard(self) -> None:
        """At teardown: SIGKILL the whole group at once. The test is over and the next
        one starts from a flushed server, so a warm shutdown (seconds) would buy nothing."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def _failure(self, waited_for: str) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"{self.kind} pid {self.pid} ({state}) never showed {waited_for!r}; log:\n" + (
            tail(self.log_text())
        )

    def __repr__(self) -> str:
        return f"<CeleryProcess {self.kind} {self.name or ''} pid={self.pid}>"


def tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    condition: Callable[[], bool], timeout: float, message: Callable[[], str] | str = "timed out"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(0.05)


def spawn(
    kind: str,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    name: str | None = None,
    python: str | Path | None = None,
) -> CeleryProcess:
    """`python -m celery -A worker <args>` in `cwd`, output to `log_path`; `python` is
    this interpreter unless given (another release's virtualenv: tests/upgrade/)."""
    command = [str(python or sys.executable), "-m", "celery", "-A", "worker", *args]
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_dies_with_parent(),
        )
    return CeleryProcess(kind, process, log_path, name)


def worker_args(
    name: str,
    concurrency: int,
    pool: str,
    loglevel: str,
    queues: Sequence[str],
    deployed: bool = False,
) -> list[str]:
    """`deployed`: with Celery's worker heartbeat, gossip and mingle, as the deployment
    runs it (a monitor's `enable_events` needs the heartbeat's event dispatcher)."""
    quiet = [] if deployed else ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return [
        "worker", "-P", pool, "-c", str(concurrency), "--loglevel", loglevel,
        "-n", name, "-Q", ",".join(queues), *quiet,
    ]  # fmt: skip


def unique_node(prefix: str = "test") -> tuple[str, str]:
    """(`-n` argument, full node name as the worker reports it)."""
    unique = f"{prefix}-{uuid.uuid4().hex[:8]}"
    # Celery expands %h to socket.gethostname().
    return f"{unique}@%h", f"{unique}@{socket.gethostname()}"


def ping(broker_url: str, node: str, timeout: float = 1.0) -> bool:
    """True if worker `node` answers a broadcast ping, asked by a bare Celery client."""
    from celery import Celery

    client = Celery("aftersales-test-ping", broker=broker_url, set_as_current=False)
    try:
        # limit=1: back as soon as the one node answers, not after the whole timeout
        replies = client.control.ping(destination=[node], timeout=timeout, limit=1)
    finally:
        client.close()
    return any(node in reply for reply in replies)


def processes_matching(needle: str) -> list[tuple[int, str]]:
    """(pid, command line) of live, non-zombie processes whose command line contains
    `needle` (a /proc scan: no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            status = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 3 of /proc/<pid>/stat is the state; Z is a zombie (dead, not yet reaped).
        state = status.rsplit(")", 1)[1].split()[0]
        if needle in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append((int(entry.name), cmdline))
    return found
