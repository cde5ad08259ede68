"""The reliable fetch records an inbound message in its order's in-flight hash in the same
step as it takes it (worker/shell/fetch.lua; docs/design.md, backlog safety): there is no
moment at which a taken message is neither queued nor in flight. Scripts against a real
Redis, with messages sent by a producer that imports nothing from this project; then a
real worker that refuses a recorded message leaves no entry behind."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.types import parse_timestamp
from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.wire import task_headers
from worker.adapters.redis_store import RedisStore
from worker.adapters.store_base import from_epoch

pytestmark = pytest.mark.integration

INBOUND = "aftersales.inbound"
INFLIGHT = {
    "prefix": "aftersales:inflight:{",
    "suffix": "}",
    "tasks": ["aftersales.buyer_action", "aftersales.order_event"],
}


@pytest.fixture(autouse=True)
def _single_redis(request):
    from tests.support.cluster import cluster_mode

    if cluster_mode(request.config):
        pytest.skip("the fetch records in flight only where the broker is the state's Redis")


def fetch(redis_client, count: int = 10) -> list:
    from worker.shell import transport

    script_keys, argv = transport.fetch_arguments(
        "unacked", "unacked_index", "host:1:c", "host:1:c|t", [(INBOUND, INBOUND, False)],
        count=count, inflight=INFLIGHT,
    )  # fmt: skip
    return redis_client.eval(transport.FETCH, len(script_keys), *script_keys, *argv) or []


def test_a_taken_inbound_message_is_in_flight_in_the_same_step(wire_client, redis_client):
    order = new_id("o")
    body = placed(order, ago(minutes=30))
    task_id = wire_client.send(ORDER_EVENT, body)
    before = time.time()

    reply = fetch(redis_client)

    assert reply[0::4] == [1] and reply[3::4] == [order.encode()]
    (raw,) = redis_client.hgetall(f"aftersales:inflight:{{{order}}}").items()
    assert raw[0] == task_id.encode()
    # The form every release reads, "<occurred epoch> <received epoch>" (release 1.1
    # reads no other: docs/operations.md, "Upgrades").
    occurred_epoch, received_epoch = (float(part) for part in raw[1].split())
    assert occurred_epoch == parse_timestamp(body["occurred_at"]).timestamp()
    assert abs(received_epoch - before) < 60
    (occurred, received) = RedisStore(redis_client).inflight(order)[task_id]
    assert occurred == datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
    assert abs(received.timestamp() - before) < 60 and received.tzinfo == UTC


WHEN = "2026-12-01T00:00:00Z"


def body(args: object) -> bytes:
    return json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None}]).encode()


SHAPES = {
    # (task, body of order o, recorded in flight)
    "inbound": (ORDER_EVENT, lambda o: body([{"order_id": o, "occurred_at": WHEN}]), True),
    "own task": ("aftersales.tick", lambda o: body([{"order_id": o, "occurred_at": WHEN}]),
                 False),
    "two args": (ORDER_EVENT, lambda o: body([{"order_id": o, "occurred_at": WHEN}, 1]), False),
    "args an object": (ORDER_EVENT, lambda o: body({"order_id": o, "occurred_at": WHEN}), False),
    "message a list": (ORDER_EVENT, lambda o: body([[o, WHEN]]), False),
    "order id a number": (ORDER_EVENT, lambda o: body([{"order_id": 7, "occurred_at": WHEN}]),
                          False),
    "empty order id": (ORDER_EVENT, lambda o: body([{"order_id": "", "occurred_at": WHEN}]),
                       False),
    "no occurred_at": (ORDER_EVENT, lambda o: body([{"order_id": o}]), False),
    "occurred_at not a timestamp": (
        ORDER_EVENT, lambda o: body([{"order_id": o, "occurred_at": "soon"}]), False),
    "occurred_at a number": (
        ORDER_EVENT, lambda o: body([{"order_id": o, "occurred_at": 1764151200}]), False),
    "not JSON": (ORDER_EVENT, lambda o: b"\x00 not json " + o.encode(), False),
}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_only_an_inbound_task_with_one_message_argument_is_recorded(
    shape, wire_client, redis_client
):
    task, make, recorded = shape
    order = new_id("o")
    wire_client.send_raw(make(order), headers=task_headers(task))

    reply = fetch(redis_client)

    assert len(reply) == 4  # taken and recorded as held either way
    assert reply[3] == (order.encode() if recorded else b"")
    assert redis_client.exists(f"aftersales:inflight:{{{order}}}") == int(recorded)


# occurred_at as sent -> recorded by the script (the worker's parse decides the value)
TIMESTAMPS = {
    "Z": "2026-12-01T10:00:00Z",
    "lower z and t": "2026-12-01t10:00:00z",
    "space for T": "2026-12-01 10:00:00Z",
    "fraction of 1 digit": "2026-12-01T10:00:00.5Z",
    "fraction of 6 digits": "2026-12-01T10:00:00.123456Z",
    "fraction of 7 digits (truncated)": "2026-12-01T10:00:00.1234567Z",
    "fraction of 9 digits, all nines": "2026-12-01T10:00:00.999999999Z",
    "fraction of zeros": "2026-12-01T10:00:00.000000Z",
    "positive offset": "2026-12-01T10:00:00+05:30",
    "negative offset": "2026-12-01T10:00:00-08:00",
    "offset -00:00": "2026-12-01T10:00:00-00:00",
    "offset +23:59 across the day": "2026-12-01T00:00:00.25+23:59",
    "offset -23:59 across the year": "2026-12-31T23:59:59-23:59",
    "leap day 2024": "2024-02-29T12:00:00Z",
    "leap day 2000 (400 years)": "2000-02-29T00:00:00Z",
    "31 December": "2025-12-31T23:59:59.999999Z",
    "30 April": "2026-04-30T00:00:00Z",
    "the epoch": "1970-01-01T00:00:00Z",
    "the epoch from a negative offset": "1969-12-31T23:00:00-01:00",
    "the last microsecond accepted": "2999-12-31T23:59:59.999999Z",
    "3000 local, 2999 UTC": "3000-01-01T00:59:59+01:00",
    # refused by the worker too: never applied, so nothing to wait for
    "29 February 2023": "2023-02-29T00:00:00Z",
    "29 February 2100 (century)": "2100-02-29T00:00:00Z",
    "31 April": "2026-04-31T00:00:00Z",
    "day 0": "2026-04-00T00:00:00Z",
    "month 13": "2026-13-01T00:00:00Z",
    "month 0": "2026-00-01T00:00:00Z",
    "hour 24": "2026-12-01T24:00:00Z",
    "minute 60": "2026-12-01T10:60:00Z",
    "leap second": "2016-12-31T23:59:60Z",
    "no offset": "2026-12-01T10:00:00",
    "offset +24:00": "2026-12-01T10:00:00+24:00",
    "offset without colon": "2026-12-01T10:00:00+0530",
    "offset of one hour digit": "2026-12-01T10:00:00+5:30",
    "fraction of 10 digits": "2026-12-01T10:00:00.1234567890Z",
    "empty fraction": "2026-12-01T10:00:00.Z",
    "comma fraction": "2026-12-01T10:00:00,5Z",
    "before the epoch": "1969-12-31T23:59:59.999999Z",
    "before the epoch by an offset": "1970-01-01T00:30:00+01:00",
    "year 3000 UTC": "3000-01-01T00:00:00Z",
    "year 0": "0000-01-01T00:00:00Z",
    "year 9999 from a negative offset": "9999-12-31T23:00:00-05:00",
    "underscore for T": "2026-12-01_10:00:00Z",
    "date only": "2026-12-01",
    "trailing newline": "2026-12-01T10:00:00Z\n",
    "leading space": " 2026-12-01T10:00:00Z",
    "Arabic-Indic digits": "\u0662\u0660\u0662\u0666-12-01T10:00:00Z",
    "empty": "",
}

LEFT_TO_THE_WORKER = {
    # Python 3.11 reads these offsets (minutes up to 99, under 24 h in all); RFC 3339 does
    # not allow them: the script records nothing, the worker records them on receipt.
    "offset minutes 60": "2026-12-01T10:00:00+05:60",
    "offset minutes 99": "2026-12-01T10:00:00-22:99",
}


def worker_value(stamp: str) -> float | None:
    """The occurred epoch the worker itself writes for `stamp` (None: it refuses it)."""
    try:
        return parse_timestamp(stamp).timestamp()
    except ValueError:
        return None


def script_value(stamp: str) -> float | None:
    """What the script must record: the worker's value, if the offset is RFC 3339's."""
    offset_minutes = stamp[-2:]
    if stamp[-6:-5] in ("+", "-") and offset_minutes.isdigit() and int(offset_minutes) > 59:
        return None
    return worker_value(stamp)


def record_all(wire_client, redis_client, stamps: list[str], orders: bool = False) -> list[Any]:
    """Each stamp as the occurred_at of an inbound message of its own order, taken by one
    fetch: the in-flight value the script wrote for each (None: nothing recorded), or with
    `orders` the order ids."""
    sent = []
    for stamp in stamps:
        order = new_id("o")
        wire_client.send(ORDER_EVENT, {**placed(order, ago(minutes=5)), "occurred_at": stamp})
        sent.append(order)
    reply = fetch(redis_client, count=len(stamps))
    assert len(reply) == 4 * len(stamps)  # every message taken and held, recorded or not
    by_order = dict(zip(reply[3::4], reply[1::4], strict=True))
    values: list[bytes | None] = []
    for order in sent:
        entries = redis_client.hvals(f"aftersales:inflight:{{{order}}}")
        assert len(entries) <= 1
        values.append(entries[0] if entries else None)
        # the reply names the order exactly when it was recorded
        assert (order.encode() in by_order) == bool(entries)
    return sent if orders else values


def test_the_recorded_occurred_at_is_the_workers_own_reading(wire_client, redis_client):
    """Edges of the script's timestamp reading against the worker's parse of the same
    string: the same epoch (the same float, so every release reads the same instant), or,
    for what the worker refuses, nothing recorded."""
    table = {**TIMESTAMPS, **LEFT_TO_THE_WORKER}
    stamps = list(table.values())
    before = time.time()
    values = record_all(wire_client, redis_client, stamps)
    for name, stamp, value in zip(table, stamps, values, strict=True):
        expected = script_value(stamp)
        assert (expected is None) == (name in LEFT_TO_THE_WORKER or worker_value(stamp) is None)
        if expected is None:
            assert value is None, f"{name}: {stamp!r} recorded as {value!r}"
            continue
        assert value is not None, f"{name}: {stamp!r} not recorded"
        occurred, received = value.split()  # exactly two numbers, as release 1.1 reads
        assert float(occurred) == expected, f"{name}: {stamp!r} recorded as {value!r}"
        assert from_epoch(float(occurred)) == from_epoch(expected)
        assert abs(float(received) - before) < 60
    accepted = sum(worker_value(stamp) is not None for stamp in stamps)
    assert 15 < accepted < len(stamps) - 15  # both sides of the table are exercised


def test_the_script_agrees_with_the_worker_on_random_timestamps(wire_client, redis_client):
    """Timestamps put together at random from parts near every limit (seeded): recorded
    exactly when the worker accepts them, with the worker's own epoch."""
    rng = random.Random(20261207)
    fields = (  # (usual values, values at or past a limit) of each part, in order
        (
            ["1970", "1999", "2000", "2024", "2100", "2400", "2999"],
            ["0000", "0001", "1969", "3000", "9999"],
        ),
        (["-"], ["-"]),
        (["01", "02", "03", "06", "12"], ["00", "13", "99"]),
        (["-"], ["-"]),
        (["01", "15", "28"], ["00", "29", "30", "31", "32"]),
        (["T"], ["t", " ", "x"]),
        (["00", "09", "23"], ["24"]),
        ([":"], [":"]),
        (["00", "30", "59"], ["60"]),
        ([":"], [":"]),
        (["00", "59"], ["60", "61"]),
        (["", ".5", ".000001", ".123456", ".1234565", ".999999999"], [".9999999999", "."]),
        (
            ["Z", "+00:00", "-01:00", "+05:30", "+23:59", "-23:59"],
            ["z", "", "-00:00", "+24:00", "+05:60", "-22:99", "-99:99", "+0100"],
        ),
    )
    stamps = []
    for _ in range(300):
        edged = set(rng.sample(range(len(fields)), rng.choice([0, 1, 1, 2])))
        stamps.append(
            "".join(rng.choice(fields[i][1 if i in edged else 0]) for i in range(len(fields)))
        )
    values = record_all(wire_client, redis_client, stamps)
    accepted = 0
    for stamp, value in zip(stamps, values, strict=True):
        expected = script_value(stamp)
        if expected is None:
            assert value is None, f"{stamp!r} recorded as {value!r}"
            continue
        accepted += 1
        assert value is not None, f"{stamp!r} not recorded"
        assert float(value.split()[0]) == expected, f"{stamp!r} recorded as {value!r}"
    assert 50 < accepted < 250  # the mix has both sides


def test_base64_bodies_of_every_padding_are_read(wire_client, redis_client):
    """kombu's body encoding is base64: bodies of each length modulo 3 decode in Lua."""
    orders = [new_id("o") + "x" * pad for pad in range(3)]
    for order in orders:
        wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    reply = fetch(redis_client)
    assert sorted(reply[3::4]) == sorted(order.encode() for order in orders)


def test_a_recorded_message_the_worker_refuses_leaves_no_entry(
    start_worker, wire_client, event_listener, redis_client
):
    """The consumer refuses a body nested too deep before any task runs: the entry the
    fetch made goes with the dead letter, not ten minutes later."""
    order = new_id("o")
    deep: object = "bottom"
    for _ in range(40):
        deep = [deep]
    body = {**message("order.paid", order, ago(minutes=1)), "x": deep}
    start_worker(concurrency=1)
    wire_client.send(ORDER_EVENT, body)
    (letter,) = event_listener.dead_letters(timeout=30.0)
    assert letter["reason"] == "too_deep"
    wait_until(
        lambda: not redis_client.exists(f"aftersales:inflight:{{{order}}}"),
        15,
        "the refused message is still in flight",
    )


def pool_children(pid: int) -> list[int]:
    """The worker's pool processes (its children, from /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_a_message_the_script_leaves_is_recorded_by_the_worker_on_receipt(
    start_worker, wire_client, redis_client
):
    """An occurred_at the worker reads but the script does not (an offset with minutes past
    59): the worker records it in flight as Celery receives it, before any task runs (its
    one pool process is stopped meanwhile), in the form every release reads; the commit
    ends it."""
    order = new_id("o")
    utc = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    stamp = f"{utc + timedelta(hours=6):%Y-%m-%dT%H:%M:%S}+05:60"  # +05:60 is 6 hours
    assert parse_timestamp(stamp) == utc and script_value(stamp) is None
    worker = start_worker(concurrency=1)
    pool = pool_children(worker.pid)
    assert pool
    key = f"aftersales:inflight:{{{order}}}"
    for child in pool:
        os.kill(child, signal.SIGSTOP)
    try:
        task_id = wire_client.send(ORDER_EVENT, {**placed(order, utc), "occurred_at": stamp})
        wait_until(lambda: redis_client.exists(key), 30, "the worker did not record it")
        ((field, value),) = redis_client.hgetall(key).items()
        assert field == task_id.encode()
        occurred, _ = (float(part) for part in value.split())
        assert occurred == utc.timestamp()
        assert not redis_client.exists(f"aftersales:order:{{{order}}}")  # no task ran yet
    finally:
        for child in pool:
            os.kill(child, signal.SIGCONT)
    wait_until(
        lambda: (
            redis_client.exists(f"aftersales:order:{{{order}}}") and not redis_client.exists(key)
        ),
        30,
        "the message was not committed, or its in-flight entry stayed",
    )


def test_entries_of_the_fetch_that_wrote_the_timestamp_as_sent_are_still_read(redis_client):
    """For a day main's fetch wrote "@<received> <occurred_at as sent>" (never released):
    such an entry still reads; one whose occurred_at does not parse (its message is never
    applied) is left out."""
    order = new_id("o")
    when = datetime(2026, 12, 1, 9, 0, 0, 500000, tzinfo=UTC)
    received = when + timedelta(minutes=1, seconds=0.25)
    redis_client.hset(
        f"aftersales:inflight:{{{order}}}",
        mapping={
            "t-1": f"@{received.timestamp()} 2026-12-01T10:00:00.5+01:00",
            "t-2": f"@{received.timestamp()} soon",
            "t-3": f"{when.timestamp()} {received.timestamp()}",
        },
    )
    read = RedisStore(redis_client).inflight(order)
    assert read == {"t-1": (when, received), "t-3": (when, received)}
