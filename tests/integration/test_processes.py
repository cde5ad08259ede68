"""Processes (docs/operations.md): the embedded Redis and `aftersales run` start, stop in
order on Ctrl-C or a dead child, and leave no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.fixtures import StartBeat, StartWorker
from tests.support.processes import wait_until
from tests.support.wire import EventListener, WireClient, protocol2_body, task_headers
from worker.cli.embedded_redis import start_embedded_redis

AFTERSALES = str(Path(sys.executable).with_name("aftersales"))
# `aftersales run` imports Celery three times over on 2 cores: allow for a slow CI.
STARTUP = 60.0


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # [state, ppid, pgrp, session, ...]


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie has already exited."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def in_sessions(sessions: set[int]) -> list[int]:
    """Live processes in any of `sessions` (each child of `aftersales run` leads one, so
    this also finds the worker's pool processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and int(stat[3]) in sessions:
                found.append(int(entry.name))
    return found


def test_embedded_redis_persists_and_stops(tmp_path: Path) -> None:
    with start_embedded_redis(tmp_path / "redis", port=0) as server:
        assert alive(server.pid)
        with redis.Redis.from_url(server.url) as client:
            client.set("greeting", "hello")
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert not alive(server.pid)
    assert server.process.returncode == 0
    with (
        start_embedded_redis(tmp_path / "redis", port=0) as again,
        redis.Redis.from_url(again.url) as client,
    ):
        assert client.get("greeting") == b"hello"  # replayed from the AOF


def test_embedded_redis_dies_with_its_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, time
        from worker.cli.embedded_redis import start_embedded_redis
        server = start_embedded_redis({str(tmp_path / "redis")!r}, port=0)
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as parent:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        assert alive(redis_pid)
        parent.kill()
        parent.wait()
    wait_until(lambda: not alive(redis_pid), 10, "redis-server outlived its parent")


class RunningCli:
    def __init__(self, process: subprocess.Popen[str], cwd: Path) -> None:
        self.process = process
        self.cwd = cwd
        self.lines: list[str] = []

    def read_until(self, pattern: str, timeout: float = STARTUP) -> re.Match[str]:
        # The process writes its own lines unbuffered; Celery's banners go to the same pipe.
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.lines)}")

    def pids(self) -> dict[str, int]:
        text = "".join(self.lines)
        found = {name: int(pid) for name, pid in re.findall(r"(worker|beat) pid (\d+)", text)}
        if match := re.search(r"embedded Redis \S+ \(data in .*, pid (\d+)\)", text):
            found["redis"] = int(match.group(1))
        return found

    def finish(self, timeout: float = 60) -> int:
        out, _ = self.process.communicate(timeout=timeout)
        self.lines.append(out)
        return self.process.returncode


StartCli = Callable[..., RunningCli]


@pytest.fixture
def start_cli(tmp_path: Path) -> Iterator[StartCli]:
    """Start `aftersales run ARGS` in tmp_path with a clean environment plus `env`."""
    started: list[RunningCli] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningCli:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
        process = subprocess.Popen(
            [AFTERSALES, "run", *args],
            cwd=tmp_path,
            env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group: killpg(SIGINT) is what a terminal's Ctrl-C sends.
            start_new_session=True,
        )
        cli = RunningCli(process, tmp_path)
        started.append(cli)
        return cli

    yield start
    for cli in started:
        if cli.process.poll() is None:
            os.killpg(cli.process.pid, signal.SIGKILL)
        cli.process.communicate()
        for pid in in_sessions(set(cli.pids().values())):
            os.kill(pid, signal.SIGKILL)


def test_run_starts_everything_and_ctrl_c_stops_it_in_order(start_cli: StartCli) -> None:
    cli = start_cli("--concurrency", "1", "--redis-port", "0")
    url = cli.read_until(r"AFTERSALES_REDIS_URL=(redis://\S+)").group(1)
    assert (cli.cwd / "var" / "redis.url").read_text().strip() == url
    cli.read_until(r"started worker pid \d+, beat pid \d+")
    cli.read_until(r"python3 dev.py demo")  # a newcomer learns what to try next
    pids = cli.pids()
    assert set(pids) == {"redis", "worker", "beat"}
    cli.read_until(r"celery@\S+ ready")

    # The worker is really there: an undecodable message is dead-lettered, not dropped.
    listener, producer = EventListener(url), WireClient(url)
    try:
        producer.send_raw(b"{not json", headers=task_headers("aftersales.order_event"))
        listener.dead_letters(timeout=45, match=lambda letter: "not json" in str(letter))
    finally:
        listener.close()
        producer.close()

    os.killpg(cli.process.pid, signal.SIGINT)
    assert cli.finish() == 0, "".join(cli.lines)
    output = "".join(cli.lines)
    order = [output.index(f"{name} stopped") for name in ("worker", "beat", "embedded Redis")]
    assert order == sorted(order), output
    assert in_sessions(set(pids.values())) == []
    assert not (cli.cwd / "var" / "redis.url").exists()
    assert (cli.cwd / "var" / "redis" / "appendonly.aof").exists()


def test_run_stops_everything_when_a_child_dies(start_cli: StartCli) -> None:
    cli = start_cli("--concurrency", "1", "--redis-port", "0")
    cli.read_until(r"started worker pid \d+, beat pid \d+")
    pids = cli.pids()
    os.kill(pids["beat"], signal.SIGKILL)
    assert cli.finish() != 0
    assert "beat exited unexpectedly" in "".join(cli.lines)
    assert in_sessions(set(pids.values())) == []


def test_run_uses_the_given_redis_and_starts_none(start_cli: StartCli, redis_url: str) -> None:
    cli = start_cli("--concurrency", "1", env={"AFTERSALES_REDIS_URL": redis_url})
    cli.read_until(r"using AFTERSALES_REDIS_URL=")
    cli.read_until(r"started worker pid \d+, beat pid \d+")
    assert "redis" not in cli.pids()
    assert not (cli.cwd / "var" / "redis.url").exists()
    os.killpg(cli.process.pid, signal.SIGTERM)
    assert cli.finish() == 0, "".join(cli.lines)
    assert in_sessions(set(cli.pids().values())) == []


def test_fixtures_drive_a_real_worker(
    start_worker: StartWorker, wire_client: WireClient, event_listener: EventListener
) -> None:
    worker = start_worker(concurrency=1)
    wire_client.send_raw(
        protocol2_body({"message_id": "m-1"}),
        content_type="application/x-python-serialize",
        content_encoding="binary",
        headers=task_headers("aftersales.order_event"),
    )
    event_listener.dead_letters(
        timeout=45, match=lambda letter: "x-python-serialize" in str(letter)
    )
    worker.kill9()
    assert not worker.alive()


def test_beat_fixture_starts_a_scheduler_and_stops_it(start_beat: StartBeat) -> None:
    beat = start_beat(loglevel="DEBUG")  # DEBUG shows the tick it sends
    assert beat.alive()
    # Past start-up: a SIGTERM that lands while beat still imports is swallowed by the
    # import machinery ("Exception ignored ... SystemExit"), seen once on a loaded machine.
    beat.wait_for_log("aftersales.tick")
    assert beat.stop() == 0
    assert not alive(beat.pid)
