"""Poison messages: each of these once made every worker exit ("Unrecoverable error") or
was acked and lost without a dead letter. Now each is dead-lettered with its original
bytes and a reason, acked, and the worker goes on with the next message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    ago,
    message,
    new_id,
    placed,
)
from tests.support.processes import ping
from tests.support.wire import protocol2_body, task_headers

pytestmark = pytest.mark.integration


def _nested(depth: int) -> Any:
    value: Any = "why"
    for _ in range(depth):
        value = [value]
    return value


def _cancel(**fields: Any) -> bytes:
    order = new_id("o")
    body = message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    body.update(fields)
    return protocol2_body(body)


POISON = [
    pytest.param(b"", "undecodable", id="empty-body", marks=pytest.mark.rabbitmq),
    pytest.param(json.dumps({"args": 1}).encode(), "invalid_task_message", id="json-object-body"),
    pytest.param(b"[1, 2, 3]", "invalid_task_message", id="list-of-ints-body"),
    pytest.param(
        _cancel(reason=_nested(900)),
        "too_deep",
        id="reason-nested-900-deep",
        marks=pytest.mark.rabbitmq,
    ),
    pytest.param(
        _cancel(occurred_at="9999-12-31T23:59:59-23:59"),
        "invalid_message",
        id="year-9999-minus-offset",
    ),
    pytest.param(
        _cancel(occurred_at="0001-01-01T00:00:00+01:00"),
        "invalid_message",
        id="year-1-plus-offset",
    ),
]


@pytest.mark.parametrize(("body", "reason"), POISON)
def test_poison_message_is_dead_lettered_and_the_worker_goes_on(
    start_worker, wire_client, event_listener, broker_url, body, reason
):
    worker = start_worker(concurrency=1)
    wire_client.send_raw(body, headers=task_headers(BUYER_ACTION))

    (letter,) = event_listener.dead_letters(timeout=20.0)
    assert letter["reason"] == reason, letter
    assert letter["task"] == BUYER_ACTION
    original = letter["original"]
    if isinstance(original, dict) and "text" in original:  # refused before decoding
        assert original["text"].encode() == body
    else:  # refused by validation: the decoded message object
        assert protocol2_body(original) == body

    # The queue is not blocked: the next messages are applied by the same worker.
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    )
    event_listener.wait_for("order.cancelled", timeout=20.0)
    assert worker.alive() and ping(broker_url, worker.name)
    assert "Unrecoverable error" not in worker.log_text()


def _envelope(body: bytes, **overrides: Any) -> bytes:
    """A kombu Redis envelope as a producer writing the list itself would make it, with
    some fields replaced by values of the wrong type."""
    import base64

    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": task_headers(BUYER_ACTION),
        "properties": {
            "body_encoding": "base64", "delivery_tag": "t", "priority": 0,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "aftersales.inbound",
                              "routing_key": "aftersales.inbound"},
        },
    }  # fmt: skip
    for key, value in overrides.items():
        if key in envelope["properties"]:
            envelope["properties"][key] = value
        else:
            envelope[key.replace("_", "-")] = value
    return json.dumps(envelope).encode()


ENVELOPES = {
    "content-encoding-a-number": {"content_encoding": 5},
    "content-encoding-a-list": {"content_encoding": ["utf-8"]},
    "content-type-an-object": {"content_type": {"type": "application/json"}},
    "task-id-a-lone-surrogate": {"headers": {**task_headers(BUYER_ACTION), "id": "\ud800"}},
    "delivery-info-a-string": {"delivery_info": "to you"},
    "delivery-info-a-list": {"delivery_info": ["exchange", "routing_key"]},
}


@pytest.mark.redis_broker("writes kombu's Redis envelopes into the queue's list")
@pytest.mark.parametrize("overrides", ENVELOPES.values(), ids=ENVELOPES.keys())
def test_envelope_fields_of_the_wrong_type_are_dead_lettered_and_the_worker_goes_on(
    start_worker, wire_client, event_listener, redis_url, redis_client, overrides
):
    worker = start_worker(concurrency=1)
    body = _cancel()
    redis_client.lpush("aftersales.inbound", _envelope(body, **overrides))

    (letter,) = event_listener.dead_letters(timeout=20.0)
    assert letter["task"] == BUYER_ACTION or letter["reason"] == "undeliverable", letter

    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    wire_client.send(
        BUYER_ACTION, message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    )
    event_listener.wait_for("order.cancelled", timeout=20.0)
    assert worker.alive() and ping(redis_url, worker.name)
    assert "Unrecoverable error" not in worker.log_text()


@pytest.mark.rabbitmq
def test_a_compressed_body_is_refused_before_it_is_decompressed(
    start_worker, wire_client, event_listener, broker_url
):
    """kombu decompresses a body whose headers name a compression before any check sees
    it, without bound: a few kilobytes of zlib make gigabytes in the worker (OOM kill, the
    message restored, the next worker killed). It must be refused as it arrived."""
    import base64
    import zlib

    worker = start_worker(concurrency=1)
    inflated = b"[[" + b" " * (16 * 1024 * 1024) + b"], {}, {}]"  # 16 MiB from ~16 KiB
    sent = zlib.compress(inflated, 9)
    headers = {**task_headers(BUYER_ACTION), "compression": "application/x-gzip"}
    wire_client.send_raw(sent, headers=headers)

    (letter,) = event_listener.dead_letters(timeout=20.0)
    assert letter["reason"] == "content_not_allowed", letter["error"]
    assert base64.b64decode(letter["original"]["base64"]) == sent  # the bytes as sent
    assert worker.alive() and ping(broker_url, worker.name)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param(
            "expires", "2000-01-01T00:00:00+00:00", id="expires", marks=pytest.mark.rabbitmq
        ),
        pytest.param("eta", "2999-01-01T00:00:00+00:00", id="eta"),
    ],
)
def test_an_inbound_fact_is_applied_when_it_arrives_whatever_its_timing_header(
    start_worker, wire_client, event_listener, header, value
):
    """Celery discards a task whose `expires` has passed and acks it: an `order.paid` that
    waited behind a backlog would be gone, and the unpaid expiry would cancel a paid order.
    It keeps a task with an `eta` in the worker's memory until then, unacked (kombu gives
    it to another worker after the visibility timeout): an inbound fact held so holds its
    order's deadlines back, and a producer sending many fills the worker's memory. A fact
    is applied when it arrives; its time is its `occurred_at`."""
    start_worker(concurrency=1)
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
    cancel = message("buyer.cancel_requested", order, ago(minutes=1), reason="x")
    wire_client.send_raw(
        protocol2_body(cancel), headers={**task_headers(BUYER_ACTION), header: value}
    )

    event_listener.wait_for("order.cancelled", timeout=20.0)
