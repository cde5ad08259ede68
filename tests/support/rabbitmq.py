"""A private RabbitMQ node for the `--broker=rabbitmq` test mode (docs/operations.md#rabbitmq).

`pytest --broker=rabbitmq` makes the `broker_url` fixture an `amqp://` URL on a node this
module starts once per session, as the current user, on free loopback ports, with its
data, logs, configuration, Erlang cookie (`HOME`) and port mapper (`epmd`) in a temporary
directory, so it touches no system service. State stays in the session's Redis.

`AFTERSALES_TEST_AMQP_URL` points the mode at a RabbitMQ of your own instead (its
aftersales queues are deleted before every test). Where neither is possible, every test
that needs the broker is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import kombu.pools
import pytest
from kombu import Connection

from worker.cli.embedded_redis import child_dies_with_parent, free_port

OPTION = "--broker"
RABBITMQ = "rabbitmq"
BOOT_TIMEOUT = 100.0
"""A node boots in about 10 s on an idle 2-core machine; CI may be loaded and slow (the
first test's 120 s pytest-timeout includes the boot)."""
STOP_TIMEOUT = 60.0
# Debian's /usr/sbin wrappers switch to the `rabbitmq` user when run as root; the scripts
# behind them run as whoever starts them, which a private node needs.
SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/sbin", "/usr/sbin", "/opt/rabbitmq/sbin")

QUEUES = (
    "aftersales.inbound",
    "aftersales.deadlines",
    "aftersales.control",
    "aftersales.dead_letter",
    "aftersales.notifications",
    "aftersales.refunds",
    # Celery's native delayed delivery (worker/adapters/amqp.py): a test's armed deadline must not
    # arrive in the next test.
    *(f"celery_delayed_{level}" for level in range(28)),
)
"""Every queue a test or its worker declares that outlives a connection."""


INBOUND_POLICY = (
    "aftersales-inbound",
    r"^aftersales\.inbound$",
    json.dumps(
        {
            "dead-letter-exchange": "aftersales.dead_letter",
            "dead-letter-routing-key": "aftersales.dead_letter",
            "delivery-limit": 20,
        }
    ),
    "--apply-to",
    "queues",
)
"""The policy docs/operations.md#rabbitmq asks operators to set: what RabbitMQ itself drops
from the inbound queue goes to the dead-letter queue."""


@dataclass
class Node:
    url: str
    env: dict[str, str]
    scripts: Path
    server: subprocess.Popen[bytes]
    epmd: subprocess.Popen[bytes]
    log: Path

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl -q <args>` against this node; its output."""
        done = subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-q", *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.decode()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("shutdown", timeout=STOP_TIMEOUT)
        for process in (self.server, self.epmd):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        choices=("redis", RABBITMQ),
        default="redis",
        help="the broker of the workers under test: the state's Redis (default) or a "
        "private RabbitMQ node (state stays in Redis)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis_broker(reason): reads kombu's Redis lists; skipped with --broker=rabbitmq"
    )
    config.addinivalue_line("markers", "rabbitmq_only: skipped without --broker=rabbitmq")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not selected(item.config):
        if item.get_closest_marker("rabbitmq_only") is not None:
            pytest.skip("RabbitMQ test: run with --broker=rabbitmq")
        return
    marker = item.get_closest_marker("redis_broker")
    if marker is not None:
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else None)
        pytest.skip(f"--broker=rabbitmq: {reason or 'reads the Redis broker directly'}")


def selected(config: pytest.Config) -> bool:
    return bool(config.getoption(OPTION, "redis") == RABBITMQ)


def _scripts() -> Path | None:
    for directory in SCRIPT_DIRS:
        script = Path(directory) / "rabbitmq-server"
        # Debian's /usr/sbin/rabbitmq-server is the wrapper that switches user: not that one.
        if os.access(script, os.X_OK) and script.resolve().name == "rabbitmq-server":
            return script.parent
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


def _epmd() -> str | None:
    return shutil.which("epmd") or next(iter(glob.glob("/usr/lib/erlang/erts-*/bin/epmd")), None)


def _node_env(base: Path, port: int, epmd_port: int) -> dict[str, str]:
    node = f"aftersales-test-{uuid.uuid4().hex[:8]}@localhost"
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = 127.0.0.1:{port}\n"
        # One node on a shared machine: no alarm for the CI box's small disk.
        "disk_free_limit.absolute = 1MB\n"
        "log.file.level = info\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq-env.conf").write_text("")
    cookie = base / ".erlang.cookie"
    cookie.write_text(uuid.uuid4().hex)
    cookie.chmod(0o400)  # Erlang refuses a cookie others can read
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update(
        HOME=str(base),
        ERL_EPMD_PORT=str(epmd_port),
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(free_port()),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
    )
    return env


def _spawn(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=env["HOME"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() kills the whole group
            preexec_fn=child_dies_with_parent(),
        )


def answers(url: str) -> bool:
    """True once an AMQP client can log in: the node has booted all its applications."""
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.connect()
    except Exception:
        return False
    return True


def start_node(base: Path) -> Node:
    """Boot a private node in `base`; return once it accepts AMQP logins."""
    scripts, epmd_path = _scripts(), _epmd()
    if scripts is None or epmd_path is None:
        pytest.skip("rabbitmq-server is not installed (.ci/run installs Debian's package)")
    port, epmd_port = free_port(), free_port()
    env = _node_env(base, port, epmd_port)
    log = base / "server.log"
    # Our own port mapper, in the foreground: erl would leave a daemon behind.
    epmd = _spawn([epmd_path, "-port", str(epmd_port)], env, log)
    server = _spawn([str(scripts / "rabbitmq-server")], env, log)
    node = Node(f"amqp://guest:guest@127.0.0.1:{port}//", env, scripts, server, epmd, log)
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        while not answers(node.url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                pytest.fail(f"RabbitMQ did not start within {BOOT_TIMEOUT:.0f}s:\n{tail}")
            time.sleep(0.25)
        node.ctl("set_policy", *INBOUND_POLICY)
    except BaseException:  # a failed or interrupted boot leaves no node behind
        node.stop()
        raise
    return node


def delete_queues(url: str) -> None:
    """Delete the aftersales queues (a test starts with none, like a FLUSHALLed Redis).
    Deleting a queue that does not exist is not an error in RabbitMQ."""
    with Connection(url) as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            channel.queue_delete(queue)


@pytest.fixture(scope="session")
def rabbitmq_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node | None]:
    """The session's private node (None with `AFTERSALES_TEST_AMQP_URL`), stopped at the end."""
    if os.environ.get("AFTERSALES_TEST_AMQP_URL"):
        yield None
        return
    node = start_node(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def rabbitmq_url(rabbitmq_node: Node | None) -> str:
    """The session's RabbitMQ as an `amqp://` URL, without the queues of earlier tests."""
    url = rabbitmq_node.url if rabbitmq_node is not None else os.environ["AFTERSALES_TEST_AMQP_URL"]
    delete_queues(url)
    # kombu's global producer pools remember what their connections declared: a client of
    # an earlier test would not declare the queues again, and publish into nothing.
    kombu.pools.reset()
    return url
