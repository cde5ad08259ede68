"""A real Redis Cluster on loopback for `pytest --redis-cluster` (docs/cluster.md).

Three primaries and three replicas (`redis-server --cluster-enabled yes`, joined by
`redis-cli --cluster create --cluster-replicas 1`), started once per session, flushed
before every test. With the option, the `state_url` seam points the worker's state at the
cluster (with `AFTERSALES_REDIS_CLUSTER=1`), `redis_client` is a `RedisCluster` on it, and
the broker stays the session's plain Redis; tests marked `single_redis` are skipped.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.support.processes import wait_until

OPTION = "--redis-cluster"
NODES = 6
"""Three primaries, each with one replica: the smallest cluster that survives a failover."""
NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout: a killed primary is replaced in a few seconds, not 15 (default)."""
START_TIMEOUT = 60.0
"""Seconds for the cluster to agree on its slots on a loaded 2-core machine."""


def cluster_mode(config: pytest.Config) -> bool:
    return bool(config.getoption(OPTION, default=False))


def _free_pair() -> int:
    """A port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            for each in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", each))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> None:
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its copy
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "",
                 "--appendonly", "no", "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def kill9(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Cluster:
    binary: str
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url)

    def info(self, node: Node) -> dict[str, str]:
        with node.client() as client:
            return {k: str(v) for k, v in client.cluster("info").items()}

    def healthy(self) -> bool:
        """Every node up, slots all served, and every node agrees on three primaries."""
        for node in self.nodes:
            if not node.answers():
                return False
            info = self.info(node)
            if info.get("cluster_state") != "ok" or info.get("cluster_size") != "3":
                return False
        return len(self.primaries()) == 3

    def role(self, node: Node) -> str:
        with node.client() as client:
            return str(client.execute_command("ROLE")[0].decode())

    def primaries(self) -> list[Node]:
        return [node for node in self.nodes if node.answers() and self.role(node) == "master"]

    def replica_of(self, primary: Node) -> Node:
        with primary.client() as client:
            replicas = client.execute_command("ROLE")[2]
        port = int(replicas[0][1])
        return next(node for node in self.nodes if node.port == port)

    def flush(self) -> None:
        for node in self.primaries():
            with node.client() as client:
                client.flushall()


def _binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed for --redis-cluster (apt redis-server)")
    return server, cli


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server, cli = _binaries()
    cluster = Cluster(server)
    try:
        for number in range(NODES):
            node = Node(_free_pair(), tmp_path_factory.mktemp(f"cluster-node-{number}"))
            node.start(server)
            cluster.nodes.append(node)
        wait_until(lambda: all(node.answers() for node in cluster.nodes), START_TIMEOUT)
        addresses = [f"127.0.0.1:{node.port}" for node in cluster.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=START_TIMEOUT,
        )  # fmt: skip
        wait_until(cluster.healthy, START_TIMEOUT, lambda: "the cluster never became healthy")
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()


@pytest.fixture
def cluster_state_url(redis_cluster: Cluster) -> str:
    """The cluster's URL (any node), after FLUSHALL on every primary."""
    wait_until(redis_cluster.healthy, START_TIMEOUT, lambda: "the cluster is not healthy")
    redis_cluster.flush()
    return redis_cluster.url


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        action="store_true",
        help="State in a Redis Cluster started on loopback (tests/support/cluster.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "single_redis(reason): skipped with --redis-cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --redis-cluster, skip the tests that read single-Redis internals (each marked
    `single_redis` with its reason)."""
    if not cluster_mode(config):
        return
    for item in items:
        marker = item.get_closest_marker("single_redis")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"single Redis only: {why}"))
