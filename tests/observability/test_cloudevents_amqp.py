"""The official CloudEvents SDK's AMQP binding reads our events, on either broker (run
with --broker=rabbitmq for RabbitMQ): the default `application/json` body through its
structured-mode reader, and with AFTERSALES_EVENT_CONTENT_TYPE=application/cloudevents+json
through its mode detection as well; a kombu consumer decodes both."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from tests.support.messages import BUYER_ACTION, ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

TRACE = f"00-{'ab' * 16}-{'cd' * 8}-01"


def drive(wire_client: Any) -> str:
    """An instant cancel of a paid order: order.cancelled and refund.initiated."""
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30)))
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(minutes=20)))
    cancel = message("buyer.cancel_requested", order, ago(minutes=10), reason="changed mind")
    wire_client.send(BUYER_ACTION, cancel, headers={"traceparent": TRACE})
    return order


def amqp_message(msg: Any) -> Any:
    from cloudevents.core.bindings.amqp import AMQPMessage

    body = msg.body if isinstance(msg.body, bytes) else str(msg.body).encode()
    return AMQPMessage(
        properties={"content-type": msg.content_type},
        application_properties=dict(msg.headers or {}),
        application_data=body,
    )


@pytest.mark.parametrize("structured", [False, True], ids=["application-json", "cloudevents-json"])
def test_the_sdk_reads_every_event_and_kombu_decodes_it(
    structured, start_worker, wire_client, broker_url
):
    from cloudevents.core.bindings.amqp import from_amqp_event, from_structured_event
    from kombu.serialization import register
    from kombu.utils.json import dumps, loads

    # what a kombu consumer adds to decode the structured mode (the typed client does it)
    register("cloudevents_json", dumps, loads, "application/cloudevents+json", "utf-8")

    with Connection(broker_url) as connection:
        queue = Queue(
            f"test.events.{uuid.uuid4().hex[:12]}",
            Exchange("aftersales.events", type="topic", durable=True),
            routing_key="#",
            auto_delete=True,
        )(connection.default_channel)
        queue.declare()
        content_type = "application/cloudevents+json" if structured else "application/json"
        start_worker(concurrency=1, env={"AFTERSALES_EVENT_CONTENT_TYPE": content_type})
        order = drive(wire_client)
        got: list[Any] = []

        def two() -> bool:
            while (msg := queue.get(no_ack=True)) is not None:
                got.append(msg)
            return len(got) >= 2

        wait_until(two, 60, lambda: f"events: {[m.headers for m in got]}")

    for msg in got:
        assert msg.content_type == content_type
        body = msg.decode()  # kombu: a dict, either way (the typed client registers the type)
        assert body["subject"] == order and body["traceparent"] == TRACE
        # the ce_* headers: id and type, for routing and dedupe without parsing the body
        assert msg.headers == {"ce_id": body["id"], "ce_type": body["type"]}
        event = from_structured_event(amqp_message(msg))  # the SDK, structured mode
        assert event.get_id() == body["id"] and event.get_type() == body["type"]
        assert event.get_source() == "aftersales" and event.get_subject() == order
        assert event.get_data() == body["data"]
        assert event.get_extension("traceparent") == TRACE
        if structured:  # the SDK's own mode detection reads it as well
            assert from_amqp_event(amqp_message(msg)).get_id() == body["id"]
        else:  # with application/json it takes the binary mode, and refuses: hence the switch
            with pytest.raises(Exception, match="source"):
                from_amqp_event(amqp_message(msg))
    assert sorted(msg.decode()["type"] for msg in got) == ["order.cancelled", "refund.initiated"]
