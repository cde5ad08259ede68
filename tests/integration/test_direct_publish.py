"""Events pushed by the commit itself (worker/adapters/direct_publish.py) are what kombu's
Redis transport would have pushed (the same JSON envelope and body values; the body's
bytes compact UTF-8 JSON, or kombu's own where orjson refuses): stock kombu consumers
read them unchanged."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, ago, message, new_id, placed
from worker.adapters.direct_publish import DirectEvents
from worker.adapters.redis_store import RedisStore
from worker.rules.state import OrderState
from worker.service_layer.ports import Commit

pytestmark = pytest.mark.integration

EVENTS = "aftersales.events"
PATTERNS = ("#", "refund.#", "order.cancelled", "*.cancelled", "order.*", "return.*.x")
ROUTING_KEYS = ("order.cancelled", "refund.initiated", "return.requested", "cancellation.accepted")


def _event(event_type: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "aftersales",
        "type": event_type,
        "subject": new_id("o"),
        "time": "2026-01-02T03:04:05Z",
        "datacontenttype": "application/json",
        "data": {"amount": "12.50", "note": "naïve ✓"},
    }


def _exchange() -> Exchange:
    return Exchange(EVENTS, type="topic", durable=True)


def _bind(connection: Connection, pattern: str) -> Queue:
    queue = Queue(f"test.direct.{uuid.uuid4().hex[:10]}", _exchange(), routing_key=pattern)
    queue(connection.default_channel).declare()
    return queue


def _without_tag(raw: bytes) -> dict[str, Any]:
    envelope = json.loads(raw)
    assert uuid.UUID(envelope["properties"].pop("delivery_tag"))
    return envelope


def test_messages_and_routes_are_kombus_own(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    with Connection(broker_url, transport="redis") as connection:
        queues = {pattern: _bind(connection, pattern) for pattern in PATTERNS}
        direct = DirectEvents(client)
        channel = connection.default_channel
        for routing_key in ROUTING_KEYS:
            # kombu's own routing, from the same bindings in Redis
            expected = {q for q in channel._lookup(EVENTS, routing_key) if q.startswith("test.")}
            ours = {q for q in direct.queues(routing_key) if q.startswith("test.")}
            assert ours == expected
            assert ours  # '#' matches everything: the comparison is never vacuous

            event = _event(routing_key)
            target = queues["#"].name
            Producer(channel).publish(
                event,
                exchange=_exchange(),
                routing_key=routing_key,
                serializer="json",
                delivery_mode=2,
                message_id=event["id"],
                headers={"ce_id": event["id"], "ce_type": event["type"]},
            )
            kombus = client.lpop(target)
            for queue in ours - {target}:
                client.delete(queue)
            ours, theirs = _without_tag(direct.message(event).encode()), _without_tag(kombus)
            body, kombu_body = (base64.b64decode(e.pop("body")) for e in (ours, theirs))
            assert ours == theirs  # the envelope: every property, header and routing
            assert json.loads(body) == json.loads(kombu_body) == event
            assert body == orjson.dumps(event)  # compact, "naïve ✓" as UTF-8
            assert body != kombu_body  # kombu's has spaces and \u escapes


def test_a_body_orjson_refuses_is_kombus_bytes_and_both_forms_are_read(
    broker_url: str,
) -> None:
    """A lone surrogate (valid JSON as an escape, not UTF-8) gets kombu's serializer's
    bytes; a stock kombu consumer reads that body and the UTF-8 one alike."""
    client = redis.Redis.from_url(broker_url)
    plain, odd = _event("order.cancelled"), _event("order.cancelled")
    odd["data"] = {"note": "half a pair: \ud800"}
    with Connection(broker_url, transport="redis") as connection:
        queue = _bind(connection, "order.cancelled")
        direct = DirectEvents(client)
        assert direct.body(odd) == json.dumps(odd).encode()  # kombu's: ASCII, escaped
        for event in (plain, odd):
            client.lpush(queue.name, direct.message(event))
        received: list[Any] = []
        consumer = Consumer(
            connection.default_channel,
            [queue],
            callbacks=[lambda body, msg: (received.append(body), msg.ack())],
            accept=["json"],
        )
        with consumer:
            deadline = datetime.now(UTC).timestamp() + 60
            while len(received) < 2 and datetime.now(UTC).timestamp() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    continue
    assert received == [plain, odd]  # LPUSH, and kombu takes from the right


def test_a_stock_kombu_consumer_reads_the_events(
    start_worker, wire_client, broker_url: str
) -> None:
    start_worker()
    received: list[tuple[dict[str, Any], Any]] = []
    with Connection(broker_url, transport="redis") as connection:
        # Bound after the worker started: its cached bindings must be refreshed.
        queue = Queue(
            f"test.direct.{uuid.uuid4().hex[:10]}", _exchange(), routing_key="#", auto_delete=True
        )
        consumer = Consumer(
            connection.default_channel,
            [queue],
            callbacks=[lambda body, msg: (received.append((body, msg)), msg.ack())],
            accept=["json"],
        )
        with consumer:
            order = new_id("o")
            wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
            cancel = message("buyer.cancel_requested", order, ago(minutes=1), reason="mistake")
            wire_client.send(BUYER_ACTION, cancel)
            deadline = datetime.now(UTC).timestamp() + 60
            while not received and datetime.now(UTC).timestamp() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    continue
    # unpaid: cancelled without a refund (docs/rules.md)
    assert [body["type"] for body, _ in received] == ["order.cancelled"]
    for body, msg in received:
        assert body["subject"] == order and body["source"] == "aftersales"
        assert msg.headers == {"ce_id": body["id"], "ce_type": body["type"]}
        assert msg.properties["message_id"] == body["id"]
        assert msg.properties["delivery_mode"] == 2
        assert msg.delivery_info["exchange"] == EVENTS
        assert msg.delivery_info["routing_key"] == body["type"]
        assert msg.content_type == "application/json" and msg.content_encoding == "utf-8"
        assert json.loads(msg.body) == body  # base64 undone by kombu, as for its own


def test_an_event_is_pushed_only_with_its_commit(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    with Connection(broker_url, transport="redis") as connection:
        queue = _bind(connection, "order.cancelled")
        store = RedisStore(client, DirectEvents(client))
        order = new_id("o")
        event = {**_event("order.cancelled"), "subject": order}
        commit = Commit(
            order_id=order,
            expected_version=3,  # the order does not exist: version 0, a lost race
            state=OrderState(order_id=order),
            outbox=((event["id"], {"kind": "event", "event": event}),),
        )
        now = datetime.now(UTC)
        assert store.commit(commit, now).status == "conflict"
        assert client.llen(queue.name) == 0

        late = _bind(connection, "#")  # bound after the store read the bindings
        result = store.commit(replace(commit, expected_version=0), now)
        assert result.status == "ok" and result.published == (event["id"],)
        for name in (queue.name, late.name):
            (raw,) = client.lrange(name, 0, -1)
            assert json.loads(base64.b64decode(json.loads(raw)["body"])) == event
        assert client.zcard("aftersales:outbox:pending") == 0  # nothing left for the relay
