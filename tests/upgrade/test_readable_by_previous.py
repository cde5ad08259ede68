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

from tests.chaos.parts import Producer
from tests.chaos.workload import generate
from tests.support.processes import wait_until
from tests.upgrade import releases
from tests.upgrade.rolling import RELEASE_FLOWS

pytestmark = pytest.mark.integration

ORDERS = 60

READ_ALL = """
import json, sys
import redis
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
    producer = Producer(redis_url)
    try:
        for script in scripts:  # every stage at once: what reaches the state is what counts
            for stage in script.stages:
                for message in stage:
                    producer.send(message)
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
    result = json.loads(read.stdout.strip().splitlines()[-1])
    # Only units asked a second time (1.2 stores them: `second_tries`) make a state of
    # this workload format 3; everything else stays what 1.1 reads.
    assert result["loaded"] + result["newer"] >= ORDERS * 0.9, result
    assert result["newer"] <= ORDERS * 0.2, result
