"""Where `aftersales demo` plays: the running worker if one answers, else its own.

Its own is `aftersales run` as a child process (embedded Redis, worker and beat) with a
fast tick and its data under `var/demo/`, so the labels it writes can be opened after
the demo; the child is stopped (worker, beat, Redis, in that order) when the demo ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from worker.cli.embedded_redis import child_dies_with_parent

PING_TIMEOUT = 1.0
"""Seconds to wait for a worker's ping reply: a live worker answers in milliseconds."""
DEMO_TICK = "PT0.2S"
"""The demo's own beat tick: a due deadline is armed within 0.2 s instead of 1 s."""
STOP_GRACE = 20.0
"""Seconds `aftersales run` gets to stop its worker, beat and Redis after the demo."""


@dataclass(frozen=True)
class Target:
    url: str
    own: bool  # True: started by the demo
    log: Path | None = None


def workers_answering(url: str) -> list[str]:
    """Node names of the workers that answer a ping on this broker ([] if none or no Redis)."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError):
        return []
    app = Celery("aftersales-demo-ping", broker=url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=PING_TIMEOUT)
    finally:
        app.close()
    return [node for reply in replies for node in reply]


@contextlib.contextmanager
def own_worker(var_dir: Path, timeout: float) -> Iterator[Target]:
    """`aftersales run` under `var_dir`, until a worker of it answers a ping."""
    var_dir.mkdir(parents=True, exist_ok=True)
    url_file, log_path = var_dir / "redis.url", var_dir / "run.log"
    url_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AFTERSALES_REDIS_URL", "AFTERSALES_BROKER_URL")}  # fmt: skip
    env.update(AFTERSALES_VAR_DIR=str(var_dir), AFTERSALES_SWEEP_INTERVAL=DEMO_TICK,
               AFTERSALES_LABEL_DIR=str((var_dir / "labels").resolve()),
               AFTERSALES_LOG_FORMAT="json")  # fmt: skip
    command = [
        sys.executable,
        "-c",
        "from worker.cli.main import main; main()",
        "run",
        "--concurrency",
        "2",
        "--redis-port",
        "0",
        "--loglevel",
        "WARNING",
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=child_dies_with_parent(),
        )  # fmt: skip
    try:
        url = _wait_for_url(url_file, process, timeout)
        deadline = time.monotonic() + timeout
        while not workers_answering(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo's worker did not start; see {log_path}")
            time.sleep(0.2)
        yield Target(url, own=True, log=log_path)
    finally:
        _stop(process)


def _wait_for_url(url_file: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the demo's Redis did not start; see {url_file.parent}/run.log")
        time.sleep(0.1)
    return url_file.read_text().strip()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # `aftersales run` stops its children in order
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
