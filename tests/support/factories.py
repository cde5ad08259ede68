"""Factories for inbound messages, with random ids and sensible defaults.

Each function returns a validated schemas.inbound model; `body(msg)` gives the JSON body a
producer would send, and `task_of(msg)` the contract task that carries it. Any field can
be overridden by keyword, e.g. `paid(order_id, at, message_id="m-1")`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.inbound import ANY_MESSAGE, TYPES_BY_TASK, Message

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""A Monday morning, far from holidays and DST changes: the default event time."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def message(type_: str, order_id: str, at: datetime = T0, **fields: Any) -> Any:
    """Any message type; `fields` are its type-specific fields (and overrides)."""
    raw: dict[str, Any] = {
        "message_id": new_id("m"),
        "type": type_,
        "order_id": order_id,
        "occurred_at": at.isoformat(),
        **fields,
    }
    return ANY_MESSAGE.validate_python(raw)


def body(msg: Message) -> dict[str, Any]:
    """The JSON body a producer sends for `msg`."""
    return msg.model_dump(mode="json", exclude_none=True)


def task_of(msg: Message) -> str:
    return next(task for task, types in TYPES_BY_TASK.items() if msg.type in types)


# --- order events -------------------------------------------------------------------


def item(
    sku: str | None = None,
    quantity: int = 1,
    unit_price: str = "20.00",
    weight_kg: float | str | None = None,
    dimensions_cm: list[float] | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "sku": sku or new_id("sku"),
        "quantity": quantity,
        "unit_price": unit_price,
    }
    if weight_kg is not None:
        line["weight_kg"] = weight_kg
    if dimensions_cm is not None:
        line["dimensions_cm"] = dimensions_cm
    return line


def order_placed(order_id: str | None = None, at: datetime = T0, **overrides: Any) -> Any:
    """A prepaid, regular-priced UK order of two items (20.00 + 2 x 15.00, fee 4.99)."""
    fields: dict[str, Any] = {
        "marketplace": "UK",
        "seller_id": "seller-1",
        "buyer_id": new_id("buyer"),
        "payment_method": "prepaid",
        "pricing": "regular",
        "currency": "GBP",
        "shipping_fee": "4.99",
        "items": [
            item("sku-a", 1, "20.00", weight_kg=1, dimensions_cm=[30, 20, 10]),
            item("sku-b", 2, "15.00", weight_kg=0.5, dimensions_cm=[20, 10, 5]),
        ],
    }
    fields.update(overrides)
    if isinstance(fields.get("payment_due_at"), datetime):
        fields["payment_due_at"] = fields["payment_due_at"].isoformat()
    return message("order.placed", order_id or new_id("order"), at, **fields)


def paid(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message("order.paid", order_id, at, **overrides)


def ready_to_ship(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message("order.ready_to_ship", order_id, at, **overrides)


def shipped(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message("order.shipped", order_id, at, **overrides)


def delivered(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message("order.delivered", order_id, at, **overrides)


# --- buyer actions ------------------------------------------------------------------


def cancel_requested(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "buyer.cancel_requested", order_id, at, **{"reason": "changed my mind", **overrides}
    )


def return_requested(
    order_id: str,
    at: datetime = T0,
    request_id: str | None = None,
    kind: str = "return_and_refund",
    reason: str = "damaged",
    method: str | None = "drop_off",
    **overrides: Any,
) -> Any:
    fields: dict[str, Any] = {
        "request_id": request_id or new_id("ret"),
        "kind": kind,
        "reason": reason,
    }
    if kind == "return_and_refund":
        fields["method"] = method
    fields.update(overrides)
    return message("buyer.return_requested", order_id, at, **fields)


def tracking_submitted(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    fields = {
        "request_id": request_id,
        "carrier": "Royal Mail",
        "tracking_number": new_id("TRK"),
        **overrides,
    }
    return message("buyer.return_tracking_submitted", order_id, at, **fields)


def label_email_requested(
    order_id: str, request_id: str, at: datetime = T0, **overrides: Any
) -> Any:
    fields = {"request_id": request_id, "email": "buyer@example.com", **overrides}
    return message("buyer.label_email_requested", order_id, at, **fields)


def appeal_submitted(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "buyer.appeal_submitted", order_id, at, **{"request_id": request_id, **overrides}
    )


# --- seller actions -----------------------------------------------------------------


def cancel_accepted(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message("seller.cancel_accepted", order_id, at, **overrides)


def cancel_rejected(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "seller.cancel_rejected", order_id, at, **{"reason": "already packed", **overrides}
    )


def seller_cancelled(order_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "seller.order_cancelled", order_id, at, **{"reason": "out of stock", **overrides}
    )


def return_approved(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "seller.return_approved", order_id, at, **{"request_id": request_id, **overrides}
    )


def return_rejected(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    fields = {"request_id": request_id, "reason": "item was used", **overrides}
    return message("seller.return_rejected", order_id, at, **fields)


def return_received(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    return message(
        "seller.return_received", order_id, at, **{"request_id": request_id, **overrides}
    )


# --- carrier and platform -----------------------------------------------------------


def dropped_off(order_id: str, request_id: str, at: datetime = T0, **overrides: Any) -> Any:
    fields = {"request_id": request_id, "tracking_number": new_id("EVRI"), **overrides}
    return message("carrier.return_dropped_off", order_id, at, **fields)


def arbitration_decided(
    order_id: str, request_id: str, outcome: str, at: datetime = T0, **overrides: Any
) -> Any:
    fields = {"request_id": request_id, "outcome": outcome, **overrides}
    return message("platform.arbitration_decided", order_id, at, **fields)
