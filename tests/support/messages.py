"""Inbound messages as plain JSON-able dicts, exactly as a producer in any language sends
them. Integration tests build their wire messages here (no project imports)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def message(type_: str, order_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "message_id": new_id("m"),
        "type": type_,
        "order_id": order_id,
        "occurred_at": ts(at),
        **fields,
    }


def placed(order_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    body = {
        "marketplace": "US",
        "seller_id": "seller-1",
        "buyer_id": "buyer-1",
        "payment_method": "prepaid",
        "pricing": "regular",
        "currency": "USD",
        "shipping_fee": "4.99",
        "items": [
            {
                "sku": "SKU-1",
                "quantity": 2,
                "unit_price": "10.00",
                "weight_kg": 0.5,
                "dimensions_cm": [20, 15, 10],
            },
            {
                "sku": "SKU-2",
                "quantity": 1,
                "unit_price": "25.50",
                "weight_kg": 1.2,
                "dimensions_cm": [30, 20, 10],
            },
        ],
    }
    body.update(fields)
    return message("order.placed", order_id, at, **body)


ORDER_EVENT = "aftersales.order_event"
BUYER_ACTION = "aftersales.buyer_action"
SELLER_ACTION = "aftersales.seller_action"
CARRIER_EVENT = "aftersales.carrier_event"
PLATFORM_ACTION = "aftersales.platform_action"
