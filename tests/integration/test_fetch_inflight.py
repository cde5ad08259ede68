"""The reliable fetch records an inbound message in its order's in-flight hash in the same
step as it takes it (worker/shell/fetch.lua; docs/design.md, backlog safety): there is no
moment at which a taken message is neither queued nor in flight. Scripts against a real
Redis, with messages sent by a producer that imports nothing from this project; then a
real worker that refuses a recorded message leaves no entry behind."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.wire import task_headers
from worker.adapters.redis_store import RedisStore

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
    assert raw[1].decode().endswith(" " + body["occurred_at"])
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
        ORDER_EVENT, lambda o: body([{"order_id": o, "occurred_at": "soon"}]), True),
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
    if shape is SHAPES["occurred_at not a timestamp"]:
        # Never applied (it is dead-lettered): recorded, but nothing for a deadline to
        # wait for; the dead-lettering task clears it.
        assert RedisStore(redis_client).inflight(order) == {}


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
