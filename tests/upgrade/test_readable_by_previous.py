"""Expand first: what today's worker stores, the previous release's code reads, so both
can run side by side during a rolling upgrade (docs/operations.md, "Upgrades").

Today's worker applies the previous release's flows (the chaos workload's generator, the
flows that release handles: tests/upgrade/rolling.py); then the previous release's own
`RedisStore`, in its own virtualenv, loads every order state not marked as a newer
format (policy documents resolved) and reads every outbox entry; a state marked newer is
one the previous release must leave (schemas/formats.py). A deterministic check
of what the rolling run only catches when an old worker happens to touch such an order."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from schemas.types import parse_timestamp
from tests.chaos.parts import Producer
from tests.chaos.workload import generate
from tests.integration.test_fetch_inflight import TIMESTAMPS, record_all, script_value
from tests.support.messages import new_id, placed
from tests.support.processes import wait_until
from tests.upgrade import releases
from tests.upgrade.rolling import RELEASE_FLOWS
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
from worker.adapters.store_base import from_epoch

pytestmark = pytest.mark.integration

ORDERS = 60

READ_ALL = """
import json, sys
import redis
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
client = redis.Redis.from_url(sys.argv[1])
store = RedisStore(client)
loaded = newer = 0
for key in client.scan_iter(match="aftersales:order:*"):
    order_id = key.decode().split("{", 1)[1].rsplit("}", 1)[0]
    if json.loads(client.hget(key, "state")).get("format", 2) > 2:
        newer += 1  # marked as a newer format: this release is not meant to read it
        continue
    store.load(order_id)  # raises if this release cannot read it
    loaded += 1
entries = [json.loads(v) for v in client.hvals("aftersales:outbox:entries")]
assert all(e["kind"] in ("event", "dead_letter", "task") for e in entries), entries
print(json.dumps({"loaded": loaded, "newer": newer, "outbox": len(entries)}))
"""


def test_what_today_stores_the_previous_release_reads(
    start_worker, redis_url, redis_client, broker_url, tmp_path
):
    if broker_url.startswith("amqp"):
        pytest.skip("reads a Redis deployment's keys")
    previous = releases.previous()
    try:
        old_python = str(releases.ensure_venv(previous["version"]))
    except Exception as exc:  # no git history (an sdist) or no package index: say so
        if os.environ.get("CI"):  # in CI a release that cannot be built is a failure
            raise
        pytest.skip(f"cannot install release {previous['version']}: {exc}")
    start_worker(concurrency=2)
    now = datetime.now(UTC).replace(microsecond=0)
    scripts = generate(
        ORDERS, 7, now, timedelta(seconds=30), timedelta(days=3), RELEASE_FLOWS[previous["version"]]
    )
    beyond_ascii = new_id("o-ü")  # stored as UTF-8, not \u escapes (compact_json.py)
    producer = Producer(redis_url)
    try:
        for script in scripts:  # every stage at once: what reaches the state is what counts
            for stage in script.stages:
                for message in stage:
                    producer.send(message)
        producer.send(placed(beyond_ascii, now - timedelta(hours=1), buyer_id="käufer-ß 😀"))
    finally:
        producer.close()
    wait_until(lambda: redis_client.llen("aftersales.inbound") == 0, 120, "inbound never drained")
    wait_until(
        lambda: len(list(redis_client.scan_iter(match="aftersales:order:*"))) >= ORDERS * 0.9,
        60,
        "orders were not stored",
    )

    read = subprocess.run(
        [old_python, "-c", READ_ALL, redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: the previous release imports its own `worker`
    )
    assert read.returncode == 0, f"release {previous['version']} could not read:\n{read.stderr}"
    stored = redis_client.hget(keys.order_state(beyond_ascii), "state")
    assert stored is not None and "käufer-ß 😀".encode() in stored  # read above
    result = json.loads(read.stdout.strip().splitlines()[-1])
    # Only units asked a second time from a rejected request that keeps others (1.2
    # stores them: `second_tries`) make a state of this workload format 3; a whole
    # rejected request asked again is stored as 1.1 stores it.
    assert result["loaded"] + result["newer"] >= ORDERS * 0.9, result
    assert result["newer"] <= ORDERS * 0.2, result


READ_INFLIGHT = """
import json, sys
import redis
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore
store = RedisStore(redis.Redis.from_url(sys.argv[1]))
print(json.dumps({
    order: {task: occurred.isoformat() for task, (occurred, _) in store.inflight(order).items()}
    for order in json.loads(sys.argv[2])
}))
"""


def test_in_flight_entries_the_fetch_records_the_previous_release_reads(
    redis_url, redis_client, wire_client, broker_url, tmp_path
):
    """The reliable fetch of today's worker records inbound messages in flight; a firing of
    the previous release's worker reads them (its own `RedisStore.inflight`) as the very
    instants today's worker reads from the same occurred_at."""
    if broker_url.startswith("amqp"):
        pytest.skip("the fetch records in flight only where the broker is the state's Redis")
    previous = releases.previous()
    try:
        old_python = str(releases.ensure_venv(previous["version"]))
    except Exception as exc:  # no git history (an sdist) or no package index: say so
        pytest.skip(f"cannot install release {previous['version']}: {exc}")
    stamps = [stamp for stamp in TIMESTAMPS.values() if script_value(stamp) is not None]
    orders = record_all(wire_client, redis_client, stamps, orders=True)
    read = subprocess.run(
        [old_python, "-c", READ_INFLIGHT, redis_url, json.dumps(orders)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: the previous release imports its own `worker`
    )
    assert read.returncode == 0, f"release {previous['version']} could not read:\n{read.stderr}"
    seen = json.loads(read.stdout.strip().splitlines()[-1])
    today = RedisStore(redis_client)
    for order, stamp in zip(orders, stamps, strict=True):
        expected = {task: at.isoformat() for task, (at, _) in today.inflight(order).items()}
        assert len(expected) == 1 and seen[order] == expected, stamp
        # and that is the worker's own reading of the string, to the microsecond
        # (as far as a float of epoch seconds holds it: to the year 2999)
        (at,) = expected.values()
        assert datetime.fromisoformat(at) == from_epoch(parse_timestamp(stamp).timestamp())
