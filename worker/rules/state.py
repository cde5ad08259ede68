"""Order state, deadlines and decisions: immutable values passed through the rules."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Data
from schemas.inbound import ItemSelection, OrderItem, Parcel, ReturnReason
from schemas.policy import MarketplacePolicy


class Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def field_of(model: BaseModel, name: str) -> Any:
    """`model`'s field `name`, or None when its type has none: `getattr(model, name, None)`
    for a field, without pydantic's way to a missing one (its `__getattr__` builds an
    AttributeError and its message: 1.8 µs, twice in every firing). A pydantic model keeps
    its fields' values in its `__dict__`; a property or method is not a field here."""
    return model.__dict__.get(name)


DeadlineKind = Literal[
    "unpaid_expiry",  # rule 5: unpaid prepaid order cancelled by the platform
    "cancel_response",  # rule 3: seller's 48 h to answer a cancellation request
    "return_response",  # rules 6-7: seller's window to answer a return request
    "resubmit",  # rule 8: 48 h to resubmit or appeal after a rejection
    "tracking",  # rule 10: 5 days to submit self-arranged tracking
    "label_validity",  # rule 9: drop-off label valid for 14 days
    "receipt_confirm",  # rule 12: automatic refund 8 days after drop-off / tracking
    "replacement_ship",  # 1.2: the seller's time to send a replacement, else a refund
    "offer_response",  # 1.2: the buyer's time to answer the seller's offer
    "hold",  # out-of-order: a parked message dead-letters if its fact never comes
]


class Deadline(Value):
    """A timed rule waiting to fire. `id` is unique within its order."""

    kind: DeadlineKind
    ref: str = ""  # request id, parked message id, or "" for order-level deadlines
    due_at: datetime
    # When the worker first knew this deadline at this due time (the commit that created
    # or moved it). Stored beside the state, not in it (worker/adapters/state_codec.py,
    # `known`: release 1.1 refuses keys it does not know). None when stored before 1.2 or
    # moved by a 1.1 worker since: unknown, so lateness is counted from the due time.
    known_at: datetime | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.ref}"


class DeadlineFired(Value):
    """Input to decide(): the schedule says `deadline` is due."""

    type: Literal["deadline.fired"] = "deadline.fired"
    order_id: str
    deadline: Deadline


class LabelGenerated(Value):
    """Input to decide(): the label task made the files for a drop-off return."""

    type: Literal["label.generated"] = "label.generated"
    order_id: str
    request_id: str
    tracking_number: str
    qr_content: str
    qr_png_uri: str
    pdf_uri: str


class OrderFacts(Value):
    """What `order.placed` said, kept for the order's life."""

    marketplace: str
    seller_id: str
    buyer_id: str
    payment_method: Literal["prepaid", "cod"]
    pricing: Literal["regular", "subsidized"]
    payment_due_at: datetime | None
    currency: str
    shipping_fee: Decimal
    items: tuple[OrderItem, ...]
    placed_at: datetime


class Cancellation(Value):
    by: Literal["buyer", "seller", "platform"]
    reason: str
    at: datetime
    seller_fault: bool
    refund: Decimal | None


class CancelRequest(Value):
    status: Literal[
        "open",  # waiting for the seller until respond_by
        "accepted",  # terminal: cancellation.accepted
        "auto_accepted",  # terminal: cancellation.auto_accepted
        "rejected",  # terminal: cancellation.rejected (by seller or system)
        "order_cancelled",  # terminal: the order was cancelled another way (seller cancel)
    ]
    reason: str
    requested_at: datetime
    respond_by: datetime
    message_id: str


class Label(Value):
    tracking_number: str
    qr_content: str
    qr_png_uri: str
    pdf_uri: str


class Offer(Value):
    """1.2: the seller's one offer on a request, and the buyer's answer."""

    kind: Literal["partial_refund", "reshipment", "exchange"]
    amount: Decimal | None = None  # the partial refund
    made_at: datetime
    respond_by: datetime
    status: Literal["open", "accepted", "declined", "lapsed"] = "open"


class ReturnRequest(Value):
    request_id: str
    status: Literal[
        "requested",  # waiting for the seller
        "approved",  # waiting for the parcel (or refunded at once for refund_only)
        "rejected",  # may be resubmitted or appealed until its resubmit deadline
        "appealed",  # waiting for platform.arbitration_decided
        "refunded",  # terminal
        "closed",  # terminal (return.closed with a reason)
        "superseded",  # terminal: a resubmission replaced it
        "offered",  # 1.2: the seller made an offer; waiting for the buyer's answer
        "replacing",  # 1.2: waiting for the seller to send the replacement
        "replaced",  # 1.2, terminal: replacement.shipped
    ]
    kind: Literal["refund_only", "return_and_refund", "reshipment", "exchange"]
    reason: ReturnReason
    method: Literal["drop_off", "self_arrange"] | None
    items: tuple[ItemSelection, ...]
    parcel: Parcel | None
    attempt: int = 1  # 1 for the first request, 2 when it asks for any unit again
    previous_request_id: str | None = None  # the (first) rejected request it took units from
    # 1.2, rejections per unit: its units asked for the second time (None: stored before
    # 1.2, derived by worker/rules/units.py:second_tries).
    second_tries: tuple[ItemSelection, ...] | None = None
    requested_at: datetime
    respond_by: datetime
    approved_at: datetime | None = None
    approved_by: Literal["seller", "platform", "timer"] | None = None
    return_cost: Decimal = Decimal("0")
    payer: Literal["buyer", "seller"] = "seller"
    label: Label | None = None
    tracking_number: str | None = None
    shipped_back_at: datetime | None = None  # drop-off scan or tracking submitted
    postage: Decimal | None = None  # what the buyer paid to post a self-arranged return
    closed_reason: str | None = None
    refund: Decimal | None = None
    offer: Offer | None = None  # 1.2
    replacement_tracking: str | None = None  # 1.2: seller.replacement_shipped's


class ParkedMessage(Value):
    """A valid message waiting for an earlier fact (out-of-order arrival)."""

    message: dict[str, Any]  # the validated message, JSON mode, re-read with ANY_MESSAGE
    task: str
    occurred_at: datetime
    parked_at: datetime
    waiting_for: str  # human-readable: what fact it needs
    refuse_code: str | None = None  # refused with this code, not dead-lettered, on expiry
    refuse_detail: str = ""


class OrderState(Value):
    order_id: str
    order: OrderFacts | None = None
    policy: MarketplacePolicy | None = None  # terms at the time of purchase
    paid_at: datetime | None = None
    ready_to_ship_at: datetime | None = None
    shipped_at: datetime | None = None
    tracking_number: str | None = None  # order.shipped's, to stop a cancelled parcel
    delivered_at: datetime | None = None
    cancellation: Cancellation | None = None
    cancel_request: CancelRequest | None = None
    returns: dict[str, ReturnRequest] = Field(default_factory=dict)
    refunded_total: Decimal = Decimal("0")
    parked: tuple[ParkedMessage, ...] = ()
    deadlines: dict[str, Deadline] = Field(default_factory=dict)
    # Event time (worker/rules/eventtime.py): the latest published outcome per subject
    # ("" for the order, else a request id), and the inputs not yet published.
    published: dict[str, datetime] = Field(default_factory=dict)
    history: History | None = None


class Logged(Value):
    """An inbound message decided since the order's last published outcome."""

    message: dict[str, Any]  # JSON mode, re-read with ANY_MESSAGE
    occurred_at: datetime
    at: datetime  # processing time it was decided at: it times the hold if it parks


class History(Value):
    """What lets a late message take its place in event time: the state after the last
    published outcome, and the inputs decided since, all silent (nothing published)."""

    base: OrderState
    inputs: tuple[Logged, ...] = ()


class EventOut(Value):
    """An outcome to publish: the service wraps it in a CloudEvent."""

    type: str
    data: Data
    time: datetime  # event time of the outcome (cause's occurred_at or deadline due)
    cause: str  # unique per logical outcome; the CloudEvent id is derived from it


class DeadLetter(Value):
    """A message for the dead-letter queue: a parked one whose fact never came, or one
    the marketplace's policy refuses outright (an order in another currency)."""

    message: dict[str, Any]
    task: str
    reason: str
    kind: Literal["held_too_long", "invalid_message"] = "held_too_long"  # a DeadLetterReason


class LabelJob(Value):
    """A drop-off return was approved: the label task must make its files."""

    request_id: str


class Decision(Value):
    state: OrderState
    events: tuple[EventOut, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    label_jobs: tuple[LabelJob, ...] = ()
    applied: bool = True  # False: the input was parked, not applied


OrderState.model_rebuild()  # `history` refers to History, defined after it
