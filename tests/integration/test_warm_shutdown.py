"""A warm shutdown must not let a deadline overtake the message its last fetch took.

The race (docs/reliable-fetch.md, "Warm shutdown"): a worker sent its fetch, got SIGTERM,
and read the reply only after Celery had cancelled its consumers. kombu then requeued the
message at the *back* of `aftersales.inbound` ("Requeuing undeliverable message ... No
consumers"): behind a barrier that a firing had sent when the message was still ahead of
it, and in no order's in-flight hash. The barrier came out first, the gate saw nothing in
flight, and the unpaid expiry cancelled an order whose payment was waiting behind it.

Redis is held still (`DEBUG SLEEP` in the producer's transaction, right after it queued
the payment and the barrier) so that the worker's fetch is in flight when SIGTERM comes:
the reply, and with it the payment, reaches the worker only after its consumer is gone.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from tests.support.messages import ORDER_EVENT, message, new_id, placed
from tests.support.processes import wait_until
from tests.support.state import wait_applied
from tests.support.wire import protocol2_body, task_headers

pytestmark = pytest.mark.integration

INBOUND = "aftersales.inbound"
UNPAID_AFTER = timedelta(hours=48)
DUE_IN = 25.0
"""Seconds from placing the order to its unpaid expiry: the whole dance (a worker start on
a loaded machine, the frozen Redis, the warm shutdown) fits before it."""
FROZEN = 3
"""Seconds Redis sleeps: long enough for the SIGTERM to arrive, and Celery to cancel the
consumer, while the payment is queued but not yet handed out (the idle worker's fetch
already waits in Redis). Not longer: redis-py's clients time out a read after 5 s, and
the fetch waiting when the sleep began (AFTERSALES_FETCH_WAIT at most) is read only after
it."""
ATTEMPTS = 5
"""Tries at catching the fetch in flight at the cancel; each one that misses says so."""
FETCHED_AFTER_CANCEL = (
    "Requeuing undeliverable message",  # kombu's tail requeue (before the fix)
    "fetched message given back to the head",  # read at the cancel, given back (the fix)
    "message fetched after its consumer stopped",  # read at the close, given back (the fix)
)
"""What the stopping worker logs when its fetch was answered after its consumer was
cancelled: the case under test. Otherwise Celery received the payment before stopping
(the benign case: in flight, restored to the head at close), and the test tries again."""


PIDBOX_EXCHANGE = "celery.pidbox"
"""The exchange of the worker's remote-control queue, which expires when unused."""


REFRESH_WITHIN = 3.0
"""Seconds after the worker answers a ping by which kombu's first binding refresh has run
(its timer's first look comes a second after the loop starts), if it had not run before."""


def pidbox_binding_mark(client: redis.Redis) -> float:
    """Where kombu's binding deadlines have the worker's pidbox (0: not there)."""
    return float(client.zscore("_kombu.binding_deadlines", PIDBOX_EXCHANGE) or 0)


def let_kombu_refresh_its_bindings(client: redis.Redis) -> None:
    """kombu (5.7 on) keeps the bindings of expiring queues alive: at its timer's first
    tick after the worker started consuming its pidbox (then every 20 minutes), the event
    loop refreshes them, a Redis call that holds the loop, and with it the consumer's
    cancel, while Redis sleeps: a refresh inside the freeze makes the race impossible.
    Wait until the refresh has moved the pidbox's mark (or, if it ran before, the time it
    would take)."""
    if not hasattr(kombu_redis.Channel, "maybe_refresh_binding_expiry"):
        return  # an older kombu: no refresh
    bound = pidbox_binding_mark(client)
    deadline = time.monotonic() + REFRESH_WITHIN
    while pidbox_binding_mark(client) <= bound and time.monotonic() < deadline:
        time.sleep(0.05)


def envelope(broker_url: str, task: str, args: list[Any]) -> tuple[str, bytes]:
    """(task id, a kombu Redis envelope for `aftersales.inbound`), as kombu's publish writes it."""
    task_id = str(uuid.uuid4())
    body = protocol2_body(args[0]) if len(args) == 1 else json.dumps([args, {}, {}]).encode()
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        raw = channel.prepare_message(
            body.decode(),
            content_type="application/json",
            content_encoding="utf-8",
            headers=task_headers(task, task_id),
            properties={"delivery_mode": 2},
        )
        raw["body"], raw["properties"]["body_encoding"] = channel.encode_body(
            body.decode(), channel.body_encoding
        )
    raw["properties"]["delivery_info"] = {"exchange": INBOUND, "routing_key": INBOUND}
    raw["properties"]["delivery_tag"] = str(uuid.uuid4())
    raw["properties"]["priority"] = 0
    return task_id, json.dumps(raw).encode()


def queued_ids(client: redis.Redis) -> list[str]:
    """Task ids in `aftersales.inbound`, next to be taken first."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(INBOUND, 0, -1))]


def unpaid_deadline(client: redis.Redis, order: str) -> tuple[str, datetime]:
    """The order's armed (or scheduled) unpaid expiry: (deadline id, due)."""
    for key in (b"aftersales:deadlines:armed", b"aftersales:deadlines"):
        for member, score in client.zrange(key, 0, -1, withscores=True):
            order_id, deadline_id = json.loads(member)
            if order_id == order:
                return deadline_id, datetime.fromtimestamp(score, UTC)
    raise AssertionError(f"no deadline for {order}")


def test_a_message_taken_by_a_stopping_worker_stays_ahead_of_the_deadline(
    start_worker, wire_client, event_listener, redis_client, broker_url
):
    if broker_url.startswith("amqp"):
        pytest.skip("RabbitMQ keeps an unacked message in its place itself")
    for attempt in range(ATTEMPTS):
        outcome = _race(start_worker, wire_client, redis_client, broker_url)
        if outcome is not None:
            break
        print(f"attempt {attempt + 1}: the fetch was not answered after the cancel; again")
    else:
        pytest.fail("the stopping worker's fetch was never answered after its cancel")
    order, paid_id, barrier_id, due = outcome

    # The payment is either still ahead of the barrier or recorded in flight for its
    # order: a firing that comes out of the barrier waits for it either way.
    ahead = queued_ids(redis_client)
    in_flight = {k.decode() for k in redis_client.hkeys(f"aftersales:inflight:{{{order}}}")}
    assert paid_id in in_flight or ahead.index(paid_id) < ahead.index(barrier_id), (
        f"the payment went behind the barrier and is not in flight: queue {ahead}, "
        f"in flight {in_flight}"
    )

    # And end to end: once the expiry is due, a new worker takes the barrier, then the
    # payment; the paid order is never cancelled.
    wait_until(lambda: datetime.now(UTC) > due, DUE_IN + 30, "the expiry never came due")
    start_worker(concurrency=1)
    wait_applied(redis_client, order, 2, timeout=60)
    wait_until(lambda: not queued_ids(redis_client), 60, "the inbound queue never drained")
    event_listener.assert_none(
        lambda e: e["type"] == "order.cancelled" and e["subject"] == order, within=3.0
    )


def _race(
    start_worker: Any, wire_client: Any, client: redis.Redis, broker_url: str
) -> tuple[str, str, str, datetime] | None:
    """One try: (order, payment task id, barrier task id, due) if the stopping worker's
    last fetch took the payment and was answered after its consumer was cancelled."""
    stopping = start_worker(concurrency=1)
    let_kombu_refresh_its_bindings(client)
    order = new_id("o")
    placed_at = datetime.now(UTC) - UNPAID_AFTER + timedelta(seconds=DUE_IN)
    wire_client.send(ORDER_EVENT, placed(order, placed_at))
    wait_applied(client, order, 1)
    deadline_id, due = unpaid_deadline(client, order)
    paid_id, paid = envelope(
        broker_url, ORDER_EVENT, [message("order.paid", order, placed_at + timedelta(hours=1))]
    )
    # What a firing sends when it finds the inbound queue busy: itself, through the tail.
    barrier_id, barrier = envelope(
        broker_url, "aftersales.deadline", [order, deadline_id, due.isoformat(), True]
    )

    def freeze() -> None:
        with redis.Redis.from_url(broker_url) as producer:
            pipe = producer.pipeline(transaction=True)
            pipe.lpush(INBOUND, paid)
            pipe.lpush(INBOUND, barrier)
            pipe.execute_command("DEBUG", "SLEEP", FROZEN)
            pipe.execute()

    frozen = threading.Thread(target=freeze)
    frozen.start()
    time.sleep(0.5)  # the transaction has reached Redis: it sleeps, the worker's fetch waits
    stopping.stop(grace=60)  # SIGTERM: Celery's warm shutdown, while Redis sleeps
    frozen.join()
    if not any(text in stopping.log_text() for text in FETCHED_AFTER_CANCEL):
        client.delete(INBOUND, f"aftersales:inflight:{{{order}}}")  # clear for the next try
        return None
    return order, paid_id, barrier_id, due
