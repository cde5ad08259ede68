"""A worker killed and restarted under its own node name (systemd, Kubernetes) is a new
holder of deadlines: its predecessor's are re-sent within the sweep bound, not after the
300 s holding limit (worker/celery.py `incarnation`, adapters/sweep.lua)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_deadlines import SWEEP, arrival_lateness, place_unpaid
from tests.support.processes import wait_until
from tests.support.wire import EventListener, WireClient

pytestmark = pytest.mark.integration

DEADLINES = 3
# The dead incarnation's alive key lasts 5 s after the kill, then the sweep (grace 2 s,
# period 0.5 s) re-sends; the restart itself takes seconds on a loaded 2-core machine.
LATENESS_BOUND = 10.0


def test_deadlines_held_by_a_worker_restarted_under_its_own_name_fire_once_soon(
    start_worker, start_beat, redis_url, redis_client
):
    from worker.adapters import keys

    # The broker on its own database, flushed after the kill: the held ETA tasks are gone
    # from it, as when a broker loses its data, and only the sweep can bring them back.
    broker_url = redis_url.rsplit("/", 1)[0] + "/1"
    env = {**SWEEP, "AFTERSALES_BROKER_URL": broker_url}
    name = f"steady-{uuid.uuid4().hex[:8]}"
    producer = WireClient(broker_url)
    listener = EventListener(broker_url)
    try:
        first = start_worker(env=env, name=name)
        start_beat(env=env)
        due = dict(place_unpaid(producer, due_in=6) for _ in range(DEADLINES))

        def held_by_first() -> int:
            holders = redis_client.hvals(keys.CLAIMS)
            # "<node>#<boot> <since>": held by this node, whichever incarnation
            return sum(1 for holder in holders if holder.decode().startswith(first.name))

        wait_until(lambda: held_by_first() == DEADLINES, 15, "the worker never held them all")
        first.kill9()
        broker = type(redis_client).from_url(broker_url)
        broker.flushdb()
        broker.close()
        listener.close()
        listener = EventListener(broker_url)  # its queue went with the flush
        again = start_worker(env=env, name=name)
        assert again.name == first.name

        cancelled = listener.wait_for("order.cancelled", timeout=30, count=DEADLINES)
        late = {event["subject"]: arrival_lateness(event, due[event["subject"]])
                for event in cancelled}  # fmt: skip
        assert set(late) == set(due)
        assert max(late.values()) < LATENESS_BOUND, f"fired late: {late}"
        print(f"latest of {DEADLINES} fired {max(late.values()):.1f} s after its due time")
        listener.collect(2.0)
        fired = Counter(event["subject"] for event in listener.of_type("order.cancelled"))
        assert set(fired.values()) == {1}, f"fired more than once: {fired}"
    finally:
        listener.close()
        producer.close()


def test_the_sweep_tells_a_restarted_incarnation_from_its_predecessor(redis_client):
    from worker.adapters import keys
    from worker.adapters.redis_store import RedisStore
    from worker.adapters.store_base import epoch
    from worker.shell.hooks import BOOT_ID, incarnation

    store, now, node = RedisStore(redis_client), datetime.now(UTC), "celery@host"
    member = keys.deadline_member("o-1", "unpaid_expiry:")
    store.client.zadd(keys.ARMED, {member: epoch(now - timedelta(seconds=3))})
    store.claim("o-1", "unpaid_expiry:", f"{node}#before-the-kill", now - timedelta(seconds=9))
    store.heartbeat(incarnation(node), ttl_ms=5000)  # the same name, beating again

    assert incarnation(node) == f"{node}#{BOOT_ID}"
    assert store.lost_armed(now, 2.0, 100, 60.0, 300.0) == [("o-1", "unpaid_expiry:")]
