"""After approval (rules 9-13): labels, parcels on their way back, refunds and closings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from schemas.events import (
    ReturnClosedData,
    ReturnLabelEmailRequestedData,
    ReturnLabelGeneratedData,
)
from schemas.inbound import (
    LabelEmailRequested,
    ReturnDroppedOff,
    ReturnTrackingSubmitted,
    SellerReturnReceived,
)
from schemas.policy import MarketplacePolicy
from worker.rules.calendar import add_business_hours
from worker.rules.cancellation import refund_event
from worker.rules.money import Cash, refund_for
from worker.rules.state import DeadlineKind, Label, LabelGenerated, OrderState, ReturnRequest
from worker.rules.step import Park, Step, amount, facts, reject, terms, timer_id, unchanged

CloseReason = Literal[
    "tracking_not_submitted",
    "label_expired",
    "rejected_final",
    "arbitration_rejected",
    "order_cancelled",
    "offer_accepted",
]


_REQUEST_TIMERS: tuple[DeadlineKind, ...] = (
    "return_response",
    "resubmit",
    "tracking",
    "label_validity",
    "receipt_confirm",
    "replacement_ship",
    "offer_response",
)


def request_timers(request_id: str) -> tuple[str, ...]:
    return tuple(timer_id(kind, request_id) for kind in _REQUEST_TIMERS)


def approve(
    step: Step,
    request_id: str,
    by: Literal["seller", "platform", "timer"],
    at: datetime,
    cause: str,
) -> Step:
    """Approval's effects: refund_only refunds at once, a reshipment waits for the
    replacement (1.2), a return or exchange waits for its parcel."""
    step = step.stop_timers(*request_timers(request_id))
    step = step.change_return(request_id, status="approved", approved_at=at, approved_by=by)
    request = step.state.returns[request_id]
    policy = terms(step.state)
    if request.kind == "refund_only":
        return refund(step, request_id, at, cause)
    if request.kind == "reshipment":
        return await_replacement(step, request_id, at)
    if request.method == "drop_off":
        step = step.label_job(request_id)
        return step.start_timer("label_validity", request_id, policy.end(policy.label_validity, at))
    return step.start_timer(
        "tracking", request_id, policy.end(policy.self_arrange_tracking_window, at)
    )


def refund(step: Step, request_id: str, at: datetime, cause: str) -> Step:
    """Rules 12-13: the request's refund; its terminal outcome."""
    request = step.state.returns[request_id]
    policy, order = terms(step.state), facts(step.state)
    cap = policy.self_arrange_postage_cap
    cash_cap = None if cap is None else Cash(cap, policy.currency or order.currency)
    money = refund_for(step.state, request, order, cash_cap)
    step = step.stop_timers(*request_timers(request_id))
    step = step.change_return(request_id, status="refunded", refund=money.amount)
    return refund_event(step, request_id, money, at, cause)


def await_replacement(step: Step, request_id: str, at: datetime) -> Step:
    """1.2: the seller has `replacement_ship_window` from `at` (a reshipment's approval,
    an exchange's receipt) to send the replacement; else the units are refunded."""
    step = step.stop_timers(*request_timers(request_id))
    step = step.change_return(request_id, status="replacing")
    return step.start_timer("replacement_ship", request_id, replacement_due(terms(step.state), at))


def replacement_due(policy: MarketplacePolicy, at: datetime) -> datetime:
    """Counted like the seller's answer window: in business time where the marketplace
    counts that window in business time (UK), else as given."""
    window = policy.replacement_ship_window
    if policy.return_response_calendar == "business":
        return add_business_hours(at, window.nominal, policy.timezone, policy.holidays)
    return policy.end(window, at)


def parcel_received(step: Step, request_id: str, at: datetime, cause: str) -> Step:
    """Rule 12: the parcel is in (or taken to be): a return refunds, an exchange waits for
    its replacement (1.2)."""
    if step.state.returns[request_id].kind == "exchange":
        return await_replacement(step, request_id, at)
    return refund(step, request_id, at, cause)


def close(step: Step, request_id: str, reason: CloseReason, at: datetime, cause: str) -> Step:
    """A request's other terminal outcome: return.closed with its reason."""
    step = step.stop_timers(*request_timers(request_id))
    step = step.change_return(request_id, status="closed", closed_reason=reason)
    data = ReturnClosedData(request_id=request_id, reason=reason)
    return step.emit("return.closed", data, at, cause)


def _approved(
    state: OrderState,
    msg: ReturnTrackingSubmitted | ReturnDroppedOff | SellerReturnReceived | LabelEmailRequested,
) -> ReturnRequest | Step | Park:
    """The approved request a parcel message is about, or what to do instead."""
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status in ("requested", "rejected", "appealed", "offered"):
        return Park(f"the approval of return request {msg.request_id}")
    if request.status != "approved":
        detail = f"the request is {request.closed_reason or request.status}"
        return reject(state, msg, "request_not_open", detail)
    return request


def parcel_sent(state: OrderState, msg: ReturnTrackingSubmitted | ReturnDroppedOff) -> Step | Park:
    """Rules 9-10: the parcel is on its way; the seller has the receipt window to act."""
    request = _approved(state, msg)
    if not isinstance(request, ReturnRequest):
        return request
    method = "self_arrange" if isinstance(msg, ReturnTrackingSubmitted) else "drop_off"
    if request.method != method:
        return reject(state, msg, "wrong_method", f"the request's method is {request.method}")
    if request.shipped_back_at is not None:
        return reject(state, msg, "already_shipped_back", "the parcel is already on its way")
    step = Step(state).stop_timers(*request_timers(request.request_id))
    step = step.change_return(
        request.request_id,
        shipped_back_at=msg.occurred_at,
        tracking_number=msg.tracking_number,
        postage=msg.postage if isinstance(msg, ReturnTrackingSubmitted) else None,
    )
    policy = terms(state)
    due = policy.end(policy.receipt_confirm_window, msg.occurred_at)
    return step.start_timer("receipt_confirm", request.request_id, due)


def received(state: OrderState, msg: SellerReturnReceived) -> Step | Park:
    request = _approved(state, msg)
    if not isinstance(request, ReturnRequest):
        return request
    if request.kind == "reshipment":
        return reject(state, msg, "wrong_method", "nothing goes back for a reshipment")
    return parcel_received(Step(state), request.request_id, msg.occurred_at, msg.message_id)


def label_email(state: OrderState, msg: LabelEmailRequested) -> Step | Park:
    request = _approved(state, msg)
    if not isinstance(request, ReturnRequest):
        return request
    if request.method != "drop_off":
        return reject(state, msg, "no_label", "only drop_off returns have a label")
    if request.label is None:
        return Park(f"the label of return request {request.request_id}")
    data = ReturnLabelEmailRequestedData(
        request_id=request.request_id, email=msg.email, pdf_uri=request.label.pdf_uri
    )
    return Step(state).emit("return.label_email_requested", data, msg.occurred_at, msg.message_id)


def label_needed(state: OrderState, request_id: str) -> ReturnRequest | None:
    """The approved drop-off return that needs label files now; None otherwise.

    The same conditions as `label_generated`, which records them: a request refunded or
    closed before the label task ran gets no files nobody would announce.
    """
    request = state.returns.get(request_id)
    if (
        state.order is None
        or state.policy is None
        or request is None
        or request.method != "drop_off"
        or request.status != "approved"
        or request.approved_at is None
        or request.label is not None
    ):
        return None
    return request


def label_valid_until(state: OrderState, request: ReturnRequest) -> datetime:
    """When an approved return's label expires: its `label_validity` deadline (approval
    plus the policy's validity)."""
    validity = state.deadlines.get(timer_id("label_validity", request.request_id))
    if validity is not None:
        return validity.due_at
    policy = terms(state)
    assert request.approved_at is not None, "only an approved request has a label"
    return policy.end(policy.label_validity, request.approved_at)


def label_generated(state: OrderState, made: LabelGenerated) -> Step:
    """The label task's result; a second one for the same request changes nothing."""
    request = state.returns.get(made.request_id)
    if state.order is None or request is None or request.label is not None:
        return unchanged(state)
    if request.status != "approved" or request.approved_at is None:
        return unchanged(state)
    policy = terms(state)
    label = Label(
        tracking_number=made.tracking_number,
        qr_content=made.qr_content,
        qr_png_uri=made.qr_png_uri,
        pdf_uri=made.pdf_uri,
    )
    step = Step(state).change_return(made.request_id, label=label)
    data = ReturnLabelGeneratedData(
        request_id=made.request_id,
        carrier=policy.drop_off.carrier,
        tracking_number=made.tracking_number,
        qr_content=made.qr_content,
        qr_png_uri=made.qr_png_uri,
        pdf_uri=made.pdf_uri,
        cost=amount(request.return_cost, facts(state).currency),
        payer=request.payer,
        valid_until=policy.end(policy.label_validity, request.approved_at),
    )
    cause = f"label:{made.request_id}"
    return step.emit("return.label_generated", data, request.approved_at, cause)
