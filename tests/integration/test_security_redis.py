"""Redis with passwords and the restricted `aftersales` ACL user of deploy/redis-users.acl.in,
started by deploy/redis-start.sh as in production: the whole system runs as that user,
nothing else is allowed to it, and its password is never shown.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.fixtures import _base_env
from tests.support.messages import ORDER_EVENT, ago, new_id, placed
from tests.support.processes import CeleryProcess, spawn, unique_node, wait_until, worker_args
from tests.support.secure_redis import SecureRedis, new_password, start_secure_redis
from tests.support.wire import EventListener, WireClient
from worker.cli.embedded_redis import free_port

pytestmark = pytest.mark.integration

SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
# Seconds from now at which the test order's unpaid expiry falls due.
DUE_IN = 3
CLI = str(Path(sys.executable).with_name("aftersales"))


@pytest.fixture
def secure_redis(tmp_path: Path):
    server = start_secure_redis(tmp_path / "redis")
    yield server
    server.stop()


def env_for(url: str) -> dict[str, str]:
    return {"AFTERSALES_REDIS_URL": url, "AFTERSALES_BROKER_URL": url, **SWEEP}


def run(command: list[str], url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command line as an operator runs it, stdout and stderr together."""
    env = {**_base_env(url, url, None), "AFTERSALES_BROKER_URL": url}
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def test_worker_beat_cli_and_flower_run_as_the_aftersales_user_and_never_show_the_password(
    start_worker, start_beat, tmp_path, secure_redis: SecureRedis
):
    url = secure_redis.url()
    listener = EventListener(url, queue_prefix="aftersales.test-events")
    producer = WireClient(url)
    outputs: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        stack.callback(producer.close)
        base, credentials, flower_process = stack.enter_context(flower(url, tmp_path))
        # As deployed (no -E): Flower turns task events on (enable_events) before it is sent
        worker = start_worker(env=env_for(url), deployed=True)
        wait_until(lambda: "enabled by remote" in worker.log_text(), 45, "events never on")
        beat = start_beat(env=env_for(url))
        order = new_id("o")
        producer.send(ORDER_EVENT, placed(order, ago(hours=48, seconds=-DUE_IN)))
        producer.send_raw(b"not json", content_type="application/json")

        (cancelled,) = listener.wait_for("order.cancelled", timeout=30)
        assert cancelled["subject"] == order
        assert listener.dead_letters(timeout=20)

        for args in (["order", order], ["deadlines"], ["dead-letters"], ["replay"]):
            result = run([CLI, *args], url)
            outputs[f"aftersales {args[0]}"] = result.stdout
            assert result.returncode == 0, result.stdout
        ping = run([sys.executable, "-m", "celery", "-A", "worker", "inspect", "ping",
                    "-d", worker.name], url)  # fmt: skip  # the compose health check
        outputs["celery inspect ping"] = ping.stdout
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout
        outputs["flower"] = flower_pages(base, credentials, flower_process)

        assert secure_redis.denials() == []
        outputs["worker"], outputs["beat"] = worker.log_text(), beat.log_text()
        assert "aftersales:**@" in outputs["worker"]  # Celery's banner, masked
        for name, text in outputs.items():
            assert secure_redis.password not in text, f"password shown by {name}"
            assert secure_redis.admin_password not in text, f"admin password shown by {name}"


@contextlib.contextmanager
def flower(url: str, tmp_path: Path) -> Iterator[tuple[str, str, CeleryProcess]]:
    """Flower as the aftersales user behind basic auth: (base URL, credentials, handle)."""
    port, credentials = free_port(), f"ops:{new_password()}"
    env = {**_base_env(url, url, None), "AFTERSALES_BROKER_URL": url,
           "FLOWER_BASIC_AUTH": credentials}  # fmt: skip
    handle = spawn("flower", ["flower", f"--port={port}", "--address=127.0.0.1"], env,
                   tmp_path, tmp_path / "flower.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(f"{base}/healthcheck")[0] == 200 or not handle.alive(), 45,
                   handle.log_text)  # fmt: skip
        yield base, credentials, handle
    finally:
        handle.stop()


def flower_pages(base: str, credentials: str, handle: CeleryProcess) -> str:
    """Its task, worker and broker views and its log: they show the tasks, behind auth."""
    assert http_get(f"{base}/api/tasks")[0] == 401
    assert http_get(f"{base}/api/tasks", "ops:wrong")[0] == 401
    wait_until(lambda: "aftersales.order_event" in http_get(f"{base}/api/tasks", credentials)[1],
               30, handle.log_text)  # fmt: skip
    paths = ("/api/tasks", "/api/workers?refresh=1", "/broker", "/workers")
    pages = [http_get(f"{base}{path}", credentials)[1] for path in paths]
    # /metrics answers without the password, as docs/security.md says (Flower 2.x by design);
    # it joins the pages checked for the password and personal data
    status, metrics = http_get(f"{base}/metrics")
    assert status == 200 and "flower_events_total" in metrics
    return "\n".join([*pages, metrics, handle.log_text()])


def http_get(url: str, credentials: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def test_the_aftersales_user_is_refused_everything_else(secure_redis: SecureRedis):
    with secure_redis.admin() as admin:
        admin.set("other:app:key", "kept")
    refused = [
        ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "dir", "/tmp"),
        ("KEYS", "*"), ("ACL", "LIST"), ("CLIENT", "LIST"),
        ("CLIENT", "KILL", "TYPE", "normal"), ("SCRIPT", "FLUSH"), ("MODULE", "LIST"),
        ("SAVE",), ("SHUTDOWN", "NOSAVE"), ("REPLICAOF", "127.0.0.1", "1"),
        ("GET", "other:app:key"), ("DEL", "other:app:key"), ("SET", "x", "1"),
        ("PUBLISH", "/1.celeryev/x", "{}"), ("SUBSCRIBE", "somebody-else"),
    ]  # fmt: skip
    allowed = []
    with redis.Redis.from_url(secure_redis.url()) as client:
        assert client.ping()
        for command in refused:
            try:
                client.execute_command(*command)
                allowed.append(command)
            except redis.exceptions.NoPermissionError:
                pass
        client.set("aftersales:probe", "mine")  # its own keys stay usable
    assert allowed == []
    with secure_redis.admin() as admin:
        assert admin.get("other:app:key") == b"kept" and admin.dbsize() == 2


def test_no_password_or_a_wrong_one_is_refused(secure_redis: SecureRedis):
    anonymous = f"redis://127.0.0.1:{secure_redis.port}/0"
    for url in (anonymous, secure_redis.url(password="wrong"), secure_redis.url("nobody")):
        with (
            redis.Redis.from_url(url) as client,
            pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)),
        ):
            client.set("aftersales:x", "1")


def test_failing_connections_never_show_the_password(tmp_path, secure_redis: SecureRedis):
    wrong = new_password()
    closed = f"redis://aftersales:{wrong}@127.0.0.1:{free_port()}/0"
    refused = secure_redis.url(password=wrong)
    shown: dict[str, str] = {}
    for label, url in (("closed port", closed), ("wrong password", refused)):
        for args in (["order", "o-1"], ["dead-letters"], ["replay"]):
            result = run([CLI, *args], url)
            assert result.returncode != 0, result.stdout
            shown[f"aftersales {args[0]} ({label})"] = result.stdout
        shown[f"worker ({label})"] = failing_start(tmp_path / label, url)
    # The broker URL as Celery shows it (the scheme names the reliable-fetch transport).
    assert "Cannot connect to " in shown["worker (closed port)"]
    assert "://aftersales:**@127.0.0.1:" in shown["worker (closed port)"]
    for name, text in shown.items():
        assert wrong not in text, f"password shown by {name}:\n{text[-2000:]}"


def failing_start(workdir: Path, url: str) -> str:
    """A worker that cannot reach (or log in to) Redis: its output until it has said so."""
    workdir.mkdir(parents=True)
    node_arg, node = unique_node("nopass")
    env = {**_base_env(url, url, None), "AFTERSALES_BROKER_URL": url}
    handle = spawn("worker", worker_args(node_arg, 1, "solo", "INFO", ["aftersales.inbound"]),
                   env, workdir, workdir / "worker.log", node)  # fmt: skip
    try:
        wait_until(lambda: "Cannot connect" in handle.log_text() or not handle.alive(), 60,
                   handle.log_text)  # fmt: skip
        return handle.log_text()
    finally:
        handle.stop()
