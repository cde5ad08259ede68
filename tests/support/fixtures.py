"""Fixtures for integration tests: a real Redis, real worker and beat processes, and bare
wire clients. Loaded by tests/conftest.py; see each fixture's docstring.

A typical test::

    def test_buyer_cancels_before_payment(start_worker, wire_client, event_listener):
        start_worker()
        wire_client.send("aftersales.order_event", placed)          # Given
        wire_client.send("aftersales.buyer_action", cancel)         # When
        (event,) = event_listener.wait_for("order.cancelled")       # Then
        assert event["data"]["by"] == "buyer"

Order matters only in one way: request `event_listener` before sending anything (as a
parameter it is set up before the test body runs, so that is automatic).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.cluster import cluster_mode
from tests.support.processes import (
    START_TIMEOUT,
    WORKER_QUEUES,
    CeleryProcess,
    ping,
    spawn,
    tail,
    unique_node,
    wait_until,
    worker_args,
)
from tests.support.wire import EventListener, WireClient
from worker.cli.embedded_redis import free_port, start_embedded_redis

_PROCESSES = pytest.StashKey[list[CeleryProcess]]()

StartWorker = Callable[..., CeleryProcess]
StartBeat = Callable[..., CeleryProcess]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the Redis server for the whole session.

    `AFTERSALES_TEST_REDIS_URL` if set (CI service container; it is FLUSHALLed before
    every test, so never point it at data you keep). Otherwise an embedded redis-server
    (worker/cli/embedded_redis.py) on a free loopback port with a temporary data dir,
    stopped at the end of the session. `AFTERSALES_REDIS_URL` is deliberately ignored:
    it is where a developer's `aftersales run` keeps its data.
    """
    given = os.environ.get("AFTERSALES_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = start_embedded_redis(tmp_path_factory.mktemp("redis"), port=free_port())
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis URL, after FLUSHALL: every test starts from an empty server
    (no state, no queues, no bindings)."""
    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    return redis_server


@pytest.fixture
def state_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Where the worker keeps its state (`AFTERSALES_REDIS_URL`): the session's Redis.

    A seam for other deployments: a test mode may override it (another Redis, a cluster)
    without touching the tests that use `start_worker`. With `--redis-cluster`: the
    session's Redis Cluster (tests/support/cluster.py), flushed."""
    if cluster_mode(request.config):
        return str(request.getfixturevalue("cluster_state_url"))
    return redis_url


@pytest.fixture
def state_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """What the worker needs besides `state_url` to reach its state (the cluster switch)."""
    return {"AFTERSALES_REDIS_CLUSTER": "1"} if cluster_mode(request.config) else {}


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The worker's broker (`AFTERSALES_BROKER_URL`): by default the state's own Redis;
    with `--broker=rabbitmq` a private RabbitMQ (tests/support/rabbitmq.py).
    `wire_client`, `event_listener` and the start-up ping use it."""
    if request.config.getoption("--broker", "redis") == "rabbitmq":
        return str(request.getfixturevalue("rabbitmq_url"))
    return redis_url


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, redis_url: str) -> Iterator[redis.Redis]:
    """A `redis.Redis` (decode_responses=False) on the clean server; closed at teardown.
    With `--redis-cluster`, a `RedisCluster` on the state's cluster (same commands)."""
    if cluster_mode(request.config):
        client = redis.RedisCluster.from_url(request.getfixturevalue("state_url"))
    else:
        client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def _base_env(state_url: str, broker_url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AFTERSALES_") and key != "PYTHONWARNINGS"
    }
    # Unbuffered, so that log_text() shows what the process has done so far. Metrics off
    # unless a test asks (`AFTERSALES_METRICS_PORT` in `env`): many workers on one host
    # would all want the default port.
    env.update(AFTERSALES_REDIS_URL=state_url, PYTHONUNBUFFERED="1", AFTERSALES_METRICS_PORT="off")
    if broker_url != state_url:
        env.update(AFTERSALES_BROKER_URL=broker_url)
    env.update(extra or {})
    return env


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest,
    state_url: str,
    state_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> Iterator[StartWorker]:
    """Factory: start a REAL Celery worker process and wait until it answers a ping.

    ``start_worker(concurrency=2, env=None, *, pool="prefork", loglevel="INFO",
    queues=WORKER_QUEUES, args=(), timeout=START_TIMEOUT, name=None, deployed=False)
    -> CeleryProcess``

    Runs ``python -m celery -A worker worker -P <pool> -c <concurrency> --loglevel <level>
    -n <unique>@%h -Q aftersales.inbound,aftersales.deadlines,aftersales.control
    --without-heartbeat --without-gossip --without-mingle`` (those three left out with
    `deployed=True`, as the deployment runs it)
    (``-n <name>@%h`` when `name` is given: restart a killed worker under its own name)
    with ``AFTERSALES_REDIS_URL=state_url`` (and ``AFTERSALES_BROKER_URL=broker_url``
    when they differ) plus ``env`` (for example
    ``{"AFTERSALES_SWEEP_INTERVAL": "PT0.2S"}``); other ``AFTERSALES_*`` variables of the
    test process are not passed on; ``AFTERSALES_METRICS_PORT`` is ``off`` unless ``env``
    sets it. ``AFTERSALES_LABEL_DIR`` defaults to
    ``tmp_path/"labels"``. The working directory is a fresh directory under ``tmp_path``.

    The handle: ``.pid``, ``.name`` (node name), ``.alive()``, ``.kill9(whole_group=True)``
    (crash), ``.stop()`` (SIGTERM = warm shutdown, SIGKILL after 5 s), ``.log_text()``,
    ``.wait_for_log(text, timeout)``. Call it several times for several workers. Every
    worker is killed (SIGKILL, whole group) at teardown; the logs of all of them are shown
    if the test fails.
    """
    started: list[CeleryProcess] = []
    request.node.stash.setdefault(_PROCESSES, [])

    def start(
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        *,
        pool: str = "prefork",
        loglevel: str = "INFO",
        queues: Sequence[str] = WORKER_QUEUES,
        args: Sequence[str] = (),
        timeout: float = START_TIMEOUT,
        name: str | None = None,
        deployed: bool = False,
    ) -> CeleryProcess:
        node_arg, node = unique_node("worker")
        if name is not None:  # a restart under the same node name, as systemd would do
            node_arg, node = f"{name}@%h", f"{name}@{socket.gethostname()}"
        workdir = tmp_path / f"{node.split('@')[0]}-{len(started)}"
        workdir.mkdir()
        full_env = _base_env(
            state_url,
            broker_url,
            {**state_env, "AFTERSALES_LABEL_DIR": str(tmp_path / "labels"), **(env or {})},
        )
        command = [*worker_args(node_arg, concurrency, pool, loglevel, queues, deployed), *args]
        handle = spawn("worker", command, full_env, workdir, workdir / "worker.log", node)
        started.append(handle)
        request.node.stash[_PROCESSES].append(handle)
        wait_until(
            lambda: (
                ping(full_env.get("AFTERSALES_BROKER_URL", state_url), node) or not handle.alive()
            ),
            timeout,
            lambda: handle._failure("a ping reply"),
        )
        if not handle.alive():
            raise AssertionError(handle._failure("a ping reply"))
        return handle

    yield start
    for handle in reversed(started):
        handle.discard()


@pytest.fixture
def start_beat(
    request: pytest.FixtureRequest,
    state_url: str,
    state_env: dict[str, str],
    broker_url: str,
    tmp_path: Path,
) -> Iterator[StartBeat]:
    """Factory: start a REAL ``celery -A worker beat`` (schedule file in ``tmp_path``).

    ``start_beat(env=None, *, loglevel="INFO", args=(), timeout=START_TIMEOUT)
    -> CeleryProcess``; returns once beat logs that it is starting. Same environment
    rules and handle as `start_worker` (``.name`` is None). Killed at teardown.
    """
    started: list[CeleryProcess] = []
    request.node.stash.setdefault(_PROCESSES, [])

    def start(
        env: Mapping[str, str] | None = None,
        *,
        loglevel: str = "INFO",
        args: Sequence[str] = (),
        timeout: float = START_TIMEOUT,
    ) -> CeleryProcess:
        workdir = tmp_path / f"beat-{len(started)}"
        workdir.mkdir()
        command = [
            "beat", "--loglevel", loglevel, "--schedule", str(workdir / "celerybeat-schedule"),
            *args,
        ]  # fmt: skip
        full_env = _base_env(
            state_url,
            broker_url,
            {**state_env, "AFTERSALES_LABEL_DIR": str(tmp_path / "labels"), **(env or {})},
        )
        handle = spawn("beat", command, full_env, workdir, workdir / "beat.log")
        started.append(handle)
        request.node.stash[_PROCESSES].append(handle)
        handle.wait_for_log("beat: Starting", timeout)
        return handle

    yield start
    for handle in reversed(started):
        handle.discard()


@pytest.fixture
def wire_client(broker_url: str) -> Iterator[WireClient]:
    """A producer that imports nothing from this project.

    ``wire_client.send(task_name, message_dict, **send_task_options) -> task_id`` sends a
    JSON task to ``aftersales.inbound``; ``wire_client.send_raw(body: bytes,
    content_type="application/json", headers=None, content_encoding="utf-8")`` publishes
    arbitrary bytes there (see `tests.support.wire.task_headers` and `protocol2_body`).
    """
    client = WireClient(broker_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def event_listener(broker_url: str) -> Iterator[EventListener]:
    """A downstream consumer: its own auto-delete queue bound to ``aftersales.events``
    with ``#``, bound before the test sends anything.

    - ``wait_for(match, timeout=30.0, count=1) -> list[dict]``: `match` is an event type,
      a set of types or a predicate over the CloudEvent dict; returns every matching
      event so far once there are `count`, else AssertionError listing what arrived.
    - ``collect(timeout=1.0) -> list[dict]``: everything arriving in the next `timeout` s.
    - ``assert_none(match, within=2.0)``, ``of_type(type)``, ``types()``, ``.events``.
    - ``dead_letters(timeout=30.0, count=1, match=None) -> list[dict]``: the same over
      the JSON bodies taken from ``aftersales.dead_letter`` (history in ``.letters``).
    """
    listener = EventListener(broker_url)
    try:
        yield listener
    finally:
        listener.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the logs of the processes a failed test started to its report."""
    report = yield
    if report.failed:
        for handle in item.stash.get(_PROCESSES, []):
            title = f"{handle.kind} {handle.name or ''} pid {handle.pid} log ({report.when})"
            report.sections.append((title, tail(handle.log_text(), 200)))
    return report


SLOW_FIXTURES = frozenset({"start_worker", "start_beat", "redis_cluster", "rabbitmq_node"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests under tests/integration with `integration` (for `-m "not integration"`).

    On several processes (pytest-xdist `-n`), the CPU-heavy tests and those that start
    processes go first and the quick ones last: they fill the gaps at the end, instead of
    one process still running a minute-long test while the others are idle. Otherwise
    the order is as written."""
    for item in items:
        if "integration" in Path(str(item.path)).parts:
            item.add_marker(pytest.mark.integration)
    if _parallel(config):
        items.sort(key=_cost_class)  # stable: the order within a class is kept


def _parallel(config: pytest.Config) -> bool:
    """In a pytest-xdist worker process (they collect, and must agree on the order)."""
    return hasattr(config, "workerinput")


def _cost_class(item: pytest.Item) -> int:
    """0: marked `cpu_heavy`; 1: starts processes (integration, chaos, a worker); 2: quick."""
    if item.get_closest_marker("cpu_heavy") is not None:
        return 0
    parts = Path(str(item.path)).parts
    fixtures = set(getattr(item, "fixturenames", ()))
    return 1 if "integration" in parts or "chaos" in parts or fixtures & SLOW_FIXTURES else 2
