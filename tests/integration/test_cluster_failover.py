"""A primary of the state's Redis Cluster fails over while deadlines are due: none is
lost, none fires twice, the worker goes on (docs/cluster.md). Runs with --redis-cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.cluster import START_TIMEOUT, Cluster, cluster_mode
from tests.support.messages import ORDER_EVENT, new_id, placed
from tests.support.processes import wait_until
from tests.support.state import wait_applied
from worker.adapters.redis_store import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
ORDERS = 60
"""Deadlines in the run: enough that every primary holds some while it fails over."""
FIRST_DUE, SPREAD = 6.0, 8.0
"""Seconds from now to the first expiry, and over how many seconds the expiries spread:
the failover lands among them."""


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    if not cluster_mode(request.config):
        pytest.skip("needs the Redis Cluster of --redis-cluster")
    return request.getfixturevalue("redis_cluster")  # type: ignore[no-any-return]


def place_unpaid(
    wire_client, redis_client, count: int, first: float = FIRST_DUE
) -> dict[str, datetime]:
    """Unpaid prepaid orders expiring `first` .. `first` + SPREAD s from now."""
    now = datetime.now(UTC)
    due = {new_id("o"): now + timedelta(seconds=first + SPREAD * i / count) for i in range(count)}
    for order, at in due.items():
        wire_client.send(ORDER_EVENT, placed(order, at - timedelta(hours=48)))
    for order in due:
        wait_applied(redis_client, order, 1)
    return due


def fail_over(cluster: Cluster, how: str) -> None:
    """`manual`: CLUSTER FAILOVER on a primary's replica (the primary stops taking writes,
    the replica catches up, then takes over). `kill9`: the primary is killed; its replica
    is elected after cluster-node-timeout; the old primary comes back as a replica."""
    primary = cluster.primaries()[0]
    replica = cluster.replica_of(primary)
    if how == "manual":
        with replica.client() as client:
            client.execute_command("CLUSTER FAILOVER")
    else:
        primary.kill9()
    wait_until(lambda: cluster.role(replica) == "master", START_TIMEOUT, "no failover")
    if how == "kill9":
        primary.start(cluster.binary)
    wait_until(cluster.healthy, START_TIMEOUT, "the cluster did not settle")


@pytest.mark.parametrize("how", ["manual", "kill9"])
def test_a_primary_fails_over_while_deadlines_fire_none_lost_none_twice(
    cluster, how, start_worker, start_beat, wire_client, event_listener, redis_client
):
    workers = [start_worker(env=SWEEP), start_worker(env=SWEEP)]
    start_beat(env=SWEEP)
    due = place_unpaid(wire_client, redis_client, ORDERS)
    store = RedisStore(redis_client)

    time.sleep(max(0.0, min(due.values()).timestamp() - time.time()))  # the first is due
    pending = sum(store.schedule_size())
    fail_over(cluster, how)

    event_listener.wait_for("order.cancelled", timeout=90, count=ORDERS)
    event_listener.collect(3.0)  # a duplicate would come now
    cancelled = event_listener.of_type("order.cancelled")
    fired = Counter(event["subject"] for event in cancelled)
    assert pending > 0, "the failover came after every deadline had fired"
    assert set(fired) == set(due), "a deadline was lost"
    assert max(fired.values()) == 1, f"fired twice: {[o for o, n in fired.items() if n > 1]}"
    assert all(worker.alive() for worker in workers)

    # The worker goes on: a new deadline after the failover fires once too.
    (after,) = place_unpaid(wire_client, redis_client, 1, first=3.0)
    event_listener.wait_for(lambda e: e["subject"] == after, timeout=60)
    event_listener.collect(2.0)
    assert Counter(e["subject"] for e in event_listener.of_type("order.cancelled"))[after] == 1
