"""The typed SDK end to end: build, validate, send; events read back with the consumer
helper, de-duplicated by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from kombu import Connection
from pydantic import ValidationError

from schemas.events import OrderCancelledData
from schemas.inbound import CancelRequested, OrderPaid, OrderPlaced
from tests.support.messages import new_id
from worker.adapters import topology
from worker.contract.client import EventConsumer, Producer, build, build_type

pytestmark = pytest.mark.integration


def _placed(order_id: str, at: datetime) -> OrderPlaced:
    return build(
        OrderPlaced, order_id=order_id, occurred_at=at, marketplace="US", seller_id="s-1",
        buyer_id="b-1", payment_method="prepaid", pricing="regular", currency="USD",
        shipping_fee="4.99", items=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}],
    )  # fmt: skip


def test_sdk_round_trip_through_a_real_worker(redis_url, start_worker):
    now = datetime.now(UTC)
    paid_order, unpaid_order = new_id("o"), new_id("o")
    with EventConsumer(
        redis_url, new_id("test.sdk"), ["order.#", "refund.#"], durable=False, auto_delete=True
    ) as consumer:
        start_worker()
        with Producer(redis_url) as producer:
            producer.send(_placed(unpaid_order, now - timedelta(minutes=5)))
            producer.send(build(CancelRequested, order_id=unpaid_order, reason="changed mind"))
            producer.send(_placed(paid_order, now - timedelta(minutes=5)))
            producer.send(
                build_type(
                    "order.paid", order_id=paid_order, occurred_at=now - timedelta(minutes=4)
                )
            )
            producer.send(
                {
                    "message_id": new_id("m"),
                    "type": "buyer.cancel_requested",
                    "order_id": paid_order,
                    "occurred_at": now.isoformat(),
                    "reason": "found it cheaper",
                }
            )

        received = []
        for event in consumer.iterate(idle_timeout=20):
            received.append(event)
            if {e.type for e in received} >= {"order.cancelled", "refund.initiated"} and sum(
                e.type == "order.cancelled" for e in received
            ) == 2:
                break
        by_order = {(e.subject, e.type): e for e in received}
        unpaid = by_order[(unpaid_order, "order.cancelled")]
        assert isinstance(unpaid.data, OrderCancelledData)
        assert unpaid.data.by == "buyer" and unpaid.data.refund is None
        refund = by_order[(paid_order, "refund.initiated")]
        assert refund.data.amount == Decimal("24.99")  # type: ignore[attr-defined]

        # The outbox may publish an outcome twice under one id: the consumer drops it.
        _publish_again(redis_url, unpaid.envelope.model_dump(mode="json"))
        assert list(consumer.iterate(idle_timeout=2)) == []
        assert consumer.duplicates == 1


def test_an_invalid_message_is_refused_before_anything_is_sent(redis_url, redis_client):
    with Producer(redis_url) as producer:
        with pytest.raises(ValidationError):
            producer.send(
                {
                    "message_id": "m-1",
                    "type": "order.teleported",
                    "order_id": "o-1",
                    "occurred_at": "2026-01-01T00:00:00Z",
                }
            )
        with pytest.raises(ValidationError, match="in the future"):
            producer.send(
                build(OrderPaid, order_id="o-1", occurred_at=datetime.now(UTC) + timedelta(hours=1))
            )
    with pytest.raises(ValidationError):
        build(OrderPlaced, order_id="o-1")  # the order's fields are missing

    assert redis_client.llen(topology.INBOUND) == 0


def _publish_again(url: str, event: dict) -> None:
    with Connection(url) as connection, connection.Producer() as producer:
        producer.publish(
            event,
            exchange=topology.events_exchange,
            routing_key=event["type"],
            serializer="json",
            declare=[topology.events_exchange],
        )
