"""Outbound events (docs/asyncapi.yaml): CloudEvents 1.0 envelopes and their `data`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from hashlib import sha1 as _sha1
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.inbound import ReturnReason
from schemas.trace import TRACEPARENT_RE, TRACESTATE_MAX, TraceParent, TraceState
from schemas.types import (
    IDENTIFIER_MAX,
    CurrencyCode,
    Identifier,
    Money,
    Timestamp,
    clean_identifier,
    format_timestamp,
    parse_timestamp,
)

EVENT_SOURCE: Final = "aftersales"
"""The CloudEvents `source` of everything this worker publishes."""

EVENT_ID_NAMESPACE = uuid.UUID("6f1c4a52-8d0b-5d3e-9a57-3c2b1e0f4a11")
"""Namespace of the uuid5 event ids: fixed forever, or ids of old outcomes would change."""


class Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Amount(Data):
    amount: Money
    currency: CurrencyCode


class StopShipment(Data):
    """1.1: the order was cancelled after it shipped: the parcel must be stopped."""

    tracking_number: str | None  # from order.shipped, when it gave one


class OrderCancelledData(Data):
    by: Literal["buyer", "seller", "platform"]
    reason: str
    seller_fault: bool
    refund: Amount | None
    stop_shipment: StopShipment | None  # 1.1: null unless the order had shipped


class CancellationRequestedData(Data):
    respond_by: Timestamp  # 1.1: never null, the seller's answer window always ends


class CancellationAcceptedData(Data):
    by: Literal["seller"]


class CancellationAutoAcceptedData(Data):
    deadline: Timestamp


class CancellationRejectedData(Data):
    by: Literal["seller", "system"]
    reason: str


class ReturnRequestedData(Data):
    request_id: Identifier
    kind: Literal["refund_only", "return_and_refund", "reshipment", "exchange"]  # 1.2: +2
    method: Literal["drop_off", "self_arrange"] | None
    reason: ReturnReason
    respond_by: Timestamp


class ReturnApprovedData(Data):
    request_id: Identifier
    by: Literal["seller", "platform"]


class ReturnAutoApprovedData(Data):
    request_id: Identifier
    deadline: Timestamp


class ReturnRejectedData(Data):
    request_id: Identifier
    reason: str
    can_resubmit: bool
    can_appeal: bool


class ReturnLabelGeneratedData(Data):
    request_id: Identifier
    carrier: str
    tracking_number: str
    qr_content: str
    qr_png_uri: str
    pdf_uri: str
    cost: Amount
    payer: Literal["buyer", "seller"]
    valid_until: Timestamp


class ReturnLabelEmailRequestedData(Data):
    request_id: Identifier
    email: str
    pdf_uri: str


class ReturnClosedData(Data):
    request_id: Identifier
    reason: Literal[
        "tracking_not_submitted",
        "label_expired",
        "rejected_final",
        "arbitration_rejected",
        "order_cancelled",  # 1.1: the platform cancelled the order before delivery
        "offer_accepted",  # 1.2: the buyer took the seller's partial refund
    ]


class ReplacementShippedData(Data):
    """1.2: the seller sent the replacement of a reshipment or exchange request in time."""

    request_id: Identifier
    kind: Literal["reshipment", "exchange"]
    carrier: str | None
    tracking_number: str


class OfferMadeData(Data):
    """1.2: the seller's offer; the buyer answers by `respond_by`."""

    request_id: Identifier
    offer: Literal["partial_refund", "reshipment", "exchange"]
    amount: Amount | None  # the partial refund; null for reshipment and exchange
    respond_by: Timestamp


class OfferDeclinedData(Data):
    """1.2: the buyer said no; the seller's answer window starts again, to `respond_by`."""

    request_id: Identifier
    respond_by: Timestamp


class OfferLapsedData(Data):
    """1.2: no answer from the buyer by `deadline`; the seller's answer window starts
    again, to `respond_by`."""

    request_id: Identifier
    deadline: Timestamp
    respond_by: Timestamp


class RefundBreakdown(Data):
    items: Money
    shipping_fee: Money
    return_shipping_deduction: Money
    # 1.1: the buyer's own postage paid back (seller-fault self-arranged returns).
    return_shipping_refund: Money


class RefundInitiatedData(Data):
    request_id: Identifier | None
    amount: Money
    currency: CurrencyCode
    breakdown: RefundBreakdown


class ActionRejectedData(Data):
    message_id: str
    type: str
    code: str
    detail: str


EVENT_DATA: dict[str, type[Data]] = {
    "order.cancelled": OrderCancelledData,
    "cancellation.requested": CancellationRequestedData,
    "cancellation.accepted": CancellationAcceptedData,
    "cancellation.auto_accepted": CancellationAutoAcceptedData,
    "cancellation.rejected": CancellationRejectedData,
    "return.requested": ReturnRequestedData,
    "return.approved": ReturnApprovedData,
    "return.auto_approved": ReturnAutoApprovedData,
    "return.rejected": ReturnRejectedData,
    "return.label_generated": ReturnLabelGeneratedData,
    "return.label_email_requested": ReturnLabelEmailRequestedData,
    "return.closed": ReturnClosedData,
    "refund.initiated": RefundInitiatedData,
    "action.rejected": ActionRejectedData,
    "replacement.shipped": ReplacementShippedData,
    "offer.made": OfferMadeData,
    "offer.declined": OfferDeclinedData,
    "offer.lapsed": OfferLapsedData,
}
"""Every outbound event type of the contract and the model of its `data`."""

EventType = Literal[
    "order.cancelled",
    "cancellation.requested",
    "cancellation.accepted",
    "cancellation.auto_accepted",
    "cancellation.rejected",
    "return.requested",
    "return.approved",
    "return.auto_approved",
    "return.rejected",
    "return.label_generated",
    "return.label_email_requested",
    "return.closed",
    "refund.initiated",
    "action.rejected",
    "replacement.shipped",
    "offer.made",
    "offer.declined",
    "offer.lapsed",
]


def _absent(value: object) -> bool:
    return value is None


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode JSON body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: Annotated[str, Field(min_length=1)]
    source: Literal["aftersales"] = EVENT_SOURCE
    type: EventType
    subject: Identifier
    time: Timestamp
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # The CloudEvents distributed-tracing extension: the W3C trace context of the message
    # that caused the event, when its producer sent one (schemas/trace.py). Absent, not
    # null, otherwise (CloudEvents extension attributes have no null), so an untraced
    # event is exactly as before.
    traceparent: TraceParent | None = Field(default=None, exclude_if=_absent)
    tracestate: TraceState | None = Field(default=None, exclude_if=_absent)

    def body(self) -> dict[str, Any]:
        """The JSON body as published."""
        return self.model_dump(mode="json")


def event_id(cause: str, event_type: str) -> str:
    """Deterministic id of one logical outcome: the same cause gives the same id.

    It is `str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause}|{event_type}"))`, the same text
    (a test compares them), written from the SHA-1 digest directly: the UUID object's
    construction and formatting were two thirds of its cost, once per event."""
    digest = _sha1(_NAMESPACE_BYTES + f"{cause}|{event_type}".encode()).hexdigest()
    variant = _VARIANT[int(digest[16], 16) & 3]  # RFC 4122: the two top bits are 10
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
_VARIANT = "89ab"


def _check_data(event_type: str, data: Data) -> None:
    """TypeError unless `data` is of the model the contract gives `event_type`."""
    expected = EVENT_DATA[event_type]
    if not isinstance(data, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(data).__name__}")


def event_body(
    event_type: str,
    subject: str,
    time: datetime,
    data: Data,
    cause: str,
    trace: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`build_event(...).body()`, the same dict, made without building the CloudEvent
    model and dumping it again (half of an event's cost in a firing). Each envelope field
    gets the model's own check: the data's model for the type, the subject an Identifier,
    the time aware and in range (normalised to UTC, as the model does), the trace context's
    patterns; a value the model would refuse raises ValueError (TypeError for data of
    another type), and nothing is built. A test compares the two for every event type."""
    _check_data(event_type, data)
    if not 0 < len(subject) <= IDENTIFIER_MAX:
        raise ValueError(f"an event's subject must be 1 to {IDENTIFIER_MAX} characters")
    body = {
        "specversion": "1.0",
        "id": event_id(cause, event_type),
        "source": EVENT_SOURCE,
        "type": event_type,
        "subject": clean_identifier(subject),
        "time": format_timestamp(parse_timestamp(time)),
        "datacontenttype": "application/json",
        "data": data.model_dump(mode="json"),
    }
    if trace:
        parent, state = trace.get("traceparent"), trace.get("tracestate")
        if parent is not None:
            if not TRACEPARENT_RE.fullmatch(parent):  # `$` alone lets a final newline by
                raise ValueError(f"{parent!r} is not a W3C traceparent")
            body["traceparent"] = parent
        if state is not None:
            if not 0 < len(state) <= TRACESTATE_MAX:
                raise ValueError(f"a tracestate must be 1 to {TRACESTATE_MAX} characters")
            body["tracestate"] = state
    return body


def build_event(
    event_type: str,
    subject: str,
    time: datetime,
    data: Data,
    cause: str,
    trace: Mapping[str, str] | None = None,
) -> CloudEvent:
    """Wrap validated `data` in its envelope; `cause` is what makes the outcome unique."""
    _check_data(event_type, data)
    return CloudEvent(
        id=event_id(cause, event_type),
        type=event_type,
        subject=subject,
        time=time,
        data=data.model_dump(mode="json"),
        traceparent=(trace or {}).get("traceparent"),
        tracestate=(trace or {}).get("tracestate"),
    )
