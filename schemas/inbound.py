"""Inbound messages (docs/asyncapi.yaml): one frozen model per message type.

Each Celery task accepts a discriminated union of its own message types, so a message
sent to the wrong task fails validation like any other bad input.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.types import (
    FUTURE_TOLERANCE,
    CurrencyCode,
    Identifier,
    Measure,
    Money,
    NonEmptyText,
    Timestamp,
)


class ReturnReason(StrEnum):
    DAMAGED = "damaged"
    DEFECTIVE = "defective"
    WRONG_ITEM = "wrong_item"
    MISSING_ITEMS = "missing_items"
    NOT_AS_DESCRIBED = "not_as_described"
    NOT_RECEIVED = "not_received"
    CHANGED_MIND = "changed_mind"
    NO_LONGER_NEEDED = "no_longer_needed"
    ORDERED_BY_MISTAKE = "ordered_by_mistake"

    @property
    def seller_fault(self) -> bool:
        return self in SELLER_FAULT_REASONS


SELLER_FAULT_REASONS = frozenset(
    {
        ReturnReason.DAMAGED,
        ReturnReason.DEFECTIVE,
        ReturnReason.WRONG_ITEM,
        ReturnReason.MISSING_ITEMS,
        ReturnReason.NOT_AS_DESCRIBED,
        ReturnReason.NOT_RECEIVED,
    }
)


class Wire(BaseModel):
    """Base of every wire model: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Message(Wire):
    message_id: Identifier
    type: str
    order_id: Identifier
    occurred_at: Timestamp

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        # The clock stays out of the schemas: the shell passes `now` in the context.
        now = (info.context or {}).get("now")
        if now is not None and value > now + FUTURE_TOLERANCE:
            raise ValueError(
                f"occurred_at is more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} "
                "minutes in the future"
            )
        return value


PositiveInt = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
Dimensions = Annotated[list[Measure], Field(min_length=3, max_length=3)]


class OrderItem(Wire):
    sku: Identifier
    quantity: PositiveInt
    unit_price: Money
    weight_kg: Measure | None = None
    dimensions_cm: Dimensions | None = None


class ItemSelection(Wire):
    sku: Identifier
    quantity: PositiveInt


class Parcel(Wire):
    weight_kg: Measure
    dimensions_cm: Dimensions


def _unique_skus(items: list[Any] | None) -> list[Any] | None:
    if items is None:  # `"items": null` means the default (the whole order)
        return None
    skus = [item.sku for item in items]
    duplicated = sorted({sku for sku in skus if skus.count(sku) > 1})
    if duplicated:
        raise ValueError(f"each sku may appear once; repeated: {', '.join(duplicated)}")
    return items


# --- order events (storefront / order system) -------------------------------------------


class OrderPlaced(Message):
    type: Literal["order.placed"]
    marketplace: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_-]{1,15}$")]
    seller_id: Identifier
    buyer_id: Identifier
    payment_method: Literal["prepaid", "cod"]
    pricing: Literal["regular", "subsidized"]
    payment_due_at: Timestamp | None = None
    currency: CurrencyCode
    shipping_fee: Money
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=500)]

    _skus = field_validator("items")(_unique_skus)

    @model_validator(mode="after")
    def _due_date_for_subsidized(self) -> OrderPlaced:
        if self.pricing == "subsidized" and self.payment_due_at is None:
            raise ValueError("payment_due_at is required when pricing is 'subsidized'")
        if self.payment_due_at is not None and self.payment_due_at < self.occurred_at:
            raise ValueError("payment_due_at is before occurred_at")
        return self


class OrderPaid(Message):
    type: Literal["order.paid"]


class OrderReadyToShip(Message):
    type: Literal["order.ready_to_ship"]


class OrderShipped(Message):
    type: Literal["order.shipped"]
    tracking_number: Identifier | None = None


class OrderDelivered(Message):
    type: Literal["order.delivered"]


# --- buyer actions (storefront app) -----------------------------------------------------


class CancelRequested(Message):
    type: Literal["buyer.cancel_requested"]
    reason: NonEmptyText


class ReturnRequested(Message):
    type: Literal["buyer.return_requested"]
    request_id: Identifier
    # 1.2: reshipment (the units are sent again, nothing goes back) and exchange (the units
    # go back as for return_and_refund, the same SKU comes instead of the money).
    kind: Literal["refund_only", "return_and_refund", "reshipment", "exchange"]
    reason: ReturnReason
    method: Literal["drop_off", "self_arrange"] | None = None
    items: Annotated[list[ItemSelection], Field(min_length=1, max_length=500)] | None = None
    parcel: Parcel | None = None

    _skus = field_validator("items")(_unique_skus)

    @model_validator(mode="after")
    def _method_matches_kind(self) -> ReturnRequested:
        if self.kind in RETURN_LEG_KINDS and self.method is None:
            raise ValueError(f"method is required when kind is {self.kind!r}")
        if self.kind not in RETURN_LEG_KINDS and self.method is not None:
            raise ValueError("method applies only when kind is 'return_and_refund' or 'exchange'")
        return self


RETURN_LEG_KINDS = frozenset({"return_and_refund", "exchange"})
"""Request kinds whose units go back (a method, a label or tracking, a receipt)."""


class OfferAccepted(Message):
    """1.2: the buyer takes the seller's offer on a request."""

    type: Literal["buyer.offer_accepted"]
    request_id: Identifier


class OfferDeclined(Message):
    """1.2: the buyer turns the seller's offer down: the request is back with the seller."""

    type: Literal["buyer.offer_declined"]
    request_id: Identifier


class ReturnTrackingSubmitted(Message):
    type: Literal["buyer.return_tracking_submitted"]
    request_id: Identifier
    carrier: Annotated[str, Field(min_length=1, max_length=64)]
    tracking_number: Identifier
    # 1.1: what the buyer paid to post it, in the order's currency (like every amount).
    postage: Money | None = None


class LabelEmailRequested(Message):
    type: Literal["buyer.label_email_requested"]
    request_id: Identifier
    # Deliberately loose: the e-mail is checked by the service that sends it; here it is
    # only carried through, and never logged.
    email: Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class AppealSubmitted(Message):
    type: Literal["buyer.appeal_submitted"]
    request_id: Identifier
    note: Annotated[str, Field(max_length=2000)] | None = None


# --- seller actions (seller center) -----------------------------------------------------


class SellerCancelAccepted(Message):
    type: Literal["seller.cancel_accepted"]


class SellerCancelRejected(Message):
    type: Literal["seller.cancel_rejected"]
    reason: NonEmptyText


class SellerOrderCancelled(Message):
    type: Literal["seller.order_cancelled"]
    reason: NonEmptyText


class SellerReturnApproved(Message):
    type: Literal["seller.return_approved"]
    request_id: Identifier


class SellerReturnRejected(Message):
    type: Literal["seller.return_rejected"]
    request_id: Identifier
    reason: NonEmptyText


class SellerReturnReceived(Message):
    type: Literal["seller.return_received"]
    request_id: Identifier


class ReplacementShipped(Message):
    """1.2: the seller sent the replacement of a reshipment or exchange request."""

    type: Literal["seller.replacement_shipped"]
    request_id: Identifier
    tracking_number: Identifier
    # Optional (not in the contract's list): carried to replacement.shipped's `carrier?`.
    carrier: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class OfferMade(Message):
    """1.2: instead of approving or rejecting an open request, one offer: a partial
    refund of `amount` (in the order's currency), or sending the units again
    (reshipment) or the same SKU for the returned units (exchange)."""

    type: Literal["seller.offer_made"]
    request_id: Identifier
    offer: Literal["partial_refund", "reshipment", "exchange"]
    amount: Money | None = None

    @model_validator(mode="after")
    def _amount_for_partial_refund(self) -> OfferMade:
        if self.offer == "partial_refund" and self.amount is None:
            raise ValueError("amount is required when offer is 'partial_refund'")
        if self.offer != "partial_refund" and self.amount is not None:
            raise ValueError("amount applies only when offer is 'partial_refund'")
        if self.amount is not None and self.amount <= 0:
            raise ValueError("amount must be more than 0")
        return self


# --- carrier and platform ---------------------------------------------------------------


class ReturnDroppedOff(Message):
    type: Literal["carrier.return_dropped_off"]
    request_id: Identifier
    tracking_number: Identifier


class ArbitrationDecided(Message):
    type: Literal["platform.arbitration_decided"]
    request_id: Identifier
    outcome: Literal["refund", "reject"]


class PlatformOrderCancelled(Message):
    type: Literal["platform.order_cancelled"]
    reason: NonEmptyText


OrderEvent = Annotated[
    OrderPlaced | OrderPaid | OrderReadyToShip | OrderShipped | OrderDelivered,
    Field(discriminator="type"),
]
BuyerAction = Annotated[
    CancelRequested
    | ReturnRequested
    | ReturnTrackingSubmitted
    | LabelEmailRequested
    | AppealSubmitted
    | OfferAccepted
    | OfferDeclined,
    Field(discriminator="type"),
]
SellerAction = Annotated[
    SellerCancelAccepted
    | SellerCancelRejected
    | SellerOrderCancelled
    | SellerReturnApproved
    | SellerReturnRejected
    | SellerReturnReceived
    | ReplacementShipped
    | OfferMade,
    Field(discriminator="type"),
]
CarrierEvent = Annotated[ReturnDroppedOff, Field(discriminator="type")]
PlatformAction = Annotated[ArbitrationDecided | PlatformOrderCancelled, Field(discriminator="type")]

InboundMessage = Annotated[
    OrderPlaced
    | OrderPaid
    | OrderReadyToShip
    | OrderShipped
    | OrderDelivered
    | CancelRequested
    | ReturnRequested
    | ReturnTrackingSubmitted
    | LabelEmailRequested
    | AppealSubmitted
    | SellerCancelAccepted
    | SellerCancelRejected
    | SellerOrderCancelled
    | SellerReturnApproved
    | SellerReturnRejected
    | SellerReturnReceived
    | ReplacementShipped
    | OfferMade
    | OfferAccepted
    | OfferDeclined
    | ReturnDroppedOff
    | ArbitrationDecided
    | PlatformOrderCancelled,
    Field(discriminator="type"),
]
"""Any inbound message, whatever task carried it (used to re-read parked messages)."""

TASK_UNIONS: dict[str, Any] = {
    "aftersales.order_event": OrderEvent,
    "aftersales.buyer_action": BuyerAction,
    "aftersales.seller_action": SellerAction,
    "aftersales.carrier_event": CarrierEvent,
    "aftersales.platform_action": PlatformAction,
}
"""The contract's inbound task names and the message union each accepts: the one list
that the tables below are derived from."""

TASK_MESSAGES: dict[str, TypeAdapter[Any]] = {
    task: TypeAdapter(union) for task, union in TASK_UNIONS.items()
}

INBOUND_TASKS: tuple[str, ...] = tuple(TASK_UNIONS)

# mypy reads an Annotated union as a value of UnionType, not as a type: Any says "a type
# form" here (pydantic accepts it).
_ANY_INBOUND: Any = InboundMessage
ANY_MESSAGE: TypeAdapter[Any] = TypeAdapter(_ANY_INBOUND)


def _types_of(union: Any) -> tuple[str, ...]:
    """The `type` values of a union's message classes, in the union's order."""
    members = get_args(get_args(union)[0]) or (get_args(union)[0],)  # Annotated[A | B, ...]
    return tuple(
        value for cls in members for value in get_args(cls.model_fields["type"].annotation)
    )


TYPES_BY_TASK: dict[str, tuple[str, ...]] = {
    task: _types_of(union) for task, union in TASK_UNIONS.items()
}
"""The message types each inbound task carries."""

TASK_OF_TYPE: dict[str, str] = {
    message_type: task for task, types in TYPES_BY_TASK.items() for message_type in types
}
"""The task that carries each message type (a dead letter names its task)."""


def parse_message(task_name: str, body: Any, now: datetime | None = None) -> Any:
    """Validate `body` as a message of `task_name`; raises pydantic.ValidationError.

    `now` enables the "more than 5 minutes in the future" check.
    """
    adapter = TASK_MESSAGES[task_name]
    return adapter.validate_python(body, context={"now": now} if now is not None else None)
