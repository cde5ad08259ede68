"""Cancellation rules 1-5: buyer cancellations, the seller's answer, seller and platform
cancellations.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from schemas.events import (
    CancellationAcceptedData,
    CancellationAutoAcceptedData,
    CancellationRejectedData,
    CancellationRequestedData,
    OrderCancelledData,
    RefundBreakdown,
    RefundInitiatedData,
    StopShipment,
)
from schemas.inbound import (
    CancelRequested,
    SellerCancelAccepted,
    SellerCancelRejected,
    SellerOrderCancelled,
)
from schemas.policy import Window
from worker.rules.money import Refund, remaining_refund, round_money
from worker.rules.state import Cancellation, CancelRequest, Deadline, OrderState
from worker.rules.step import Park, Step, amount, facts, reject, terms, timer_id

CANCEL_TIMER = timer_id("cancel_response")
UNPAID_TIMER = timer_id("unpaid_expiry")
UNPAID_REASON = "payment not received in time"


def refund_event(
    step: Step, request_id: str | None, refund: Refund, at: datetime, cause: str
) -> Step:
    """Emit refund.initiated and count it against what was paid."""
    currency = facts(step.state).currency

    def wire(value: Decimal) -> Decimal:  # every amount with the currency's minor unit
        return round_money(value, currency)

    data = RefundInitiatedData(
        request_id=request_id,
        amount=wire(refund.amount),
        currency=currency,
        breakdown=RefundBreakdown(
            items=wire(refund.items),
            shipping_fee=wire(refund.shipping_fee),
            return_shipping_deduction=wire(refund.deduction),
            return_shipping_refund=wire(refund.postage_refund),
        ),
    )
    step = step.update(refunded_total=step.state.refunded_total + refund.amount)
    return step.emit("refund.initiated", data, at, cause)


def cancel_order(
    step: Step,
    by: Literal["buyer", "seller", "platform"],
    reason: str,
    at: datetime,
    cause: str,
) -> Step:
    """The single place an order is cancelled: order.cancelled, then the refund if paid."""
    state = step.state
    order = facts(state)
    refund = remaining_refund(state, order) if state.paid_at is not None else None
    cancellation = Cancellation(
        by=by,
        reason=reason,
        at=at,
        seller_fault=by == "seller",
        refund=refund.amount if refund else None,
    )
    request = state.cancel_request
    if request is not None and request.status == "open":
        step = step.update(cancel_request=request.model_copy(update={"status": "order_cancelled"}))
    step = step.update(cancellation=cancellation).stop_timers(CANCEL_TIMER, UNPAID_TIMER)
    # Shipped already (platform cancellation): whoever carries the parcel must stop it.
    stop = StopShipment(tracking_number=state.tracking_number) if state.shipped_at else None
    data = OrderCancelledData(
        by=by,
        reason=reason,
        seller_fault=cancellation.seller_fault,
        refund=amount(refund.amount, order.currency) if refund else None,
        stop_shipment=stop,
    )
    step = step.emit("order.cancelled", data, at, cause)
    if refund is None or not refund.amount:
        return step  # unpaid, or every unit already refunded: nothing goes back twice
    return refund_event(step, None, refund, at, cause)


def in_free_window(state: OrderState, at: datetime) -> bool:
    """Rules 1-2: before payment, or up to and including the window after it (cod: placed).

    A seller may widen the window, up to ready-to-ship (docs/rules.md).
    """
    order = facts(state)
    window = terms(state).free_cancel_for(order.seller_id)
    if not isinstance(window, Window):  # until_ready_to_ship
        return state.ready_to_ship_at is None or at < state.ready_to_ship_at
    if order.payment_method == "cod":
        return at <= terms(state).end(window, order.placed_at)
    if state.paid_at is None or state.paid_at > at:
        return True
    return at <= terms(state).end(window, state.paid_at)


def buyer_cancel(state: OrderState, msg: CancelRequested) -> Step:
    request = state.cancel_request
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is already cancelled")
    if state.shipped_at is not None:
        return reject(state, msg, "already_shipped", "the order has shipped: ask for a return")
    if request is not None and request.status == "open":
        return reject(state, msg, "cancel_request_open", "a request is waiting for the seller")
    if request is not None:
        return reject(state, msg, "cancel_request_rejected", "the seller rejected a request")
    if in_free_window(state, msg.occurred_at):
        return cancel_order(Step(state), "buyer", msg.reason, msg.occurred_at, msg.message_id)
    return _ask_seller(state, msg)


def _ask_seller(state: OrderState, msg: CancelRequested) -> Step:
    """Rule 3: the request goes to the seller, whose answer window always ends."""
    policy = terms(state)
    respond_by = policy.end(policy.cancel_response_for(facts(state).seller_id), msg.occurred_at)
    request = CancelRequest(
        status="open",
        reason=msg.reason,
        requested_at=msg.occurred_at,
        respond_by=respond_by,
        message_id=msg.message_id,
    )
    step = Step(state).update(cancel_request=request)
    step = step.start_timer("cancel_response", "", respond_by)
    data = CancellationRequestedData(respond_by=respond_by)
    return step.emit("cancellation.requested", data, msg.occurred_at, msg.message_id)


def seller_answer(
    state: OrderState, msg: SellerCancelAccepted | SellerCancelRejected
) -> Step | Park:
    request = state.cancel_request
    if request is None and state.cancellation is None and state.shipped_at is None:
        return Park("buyer.cancel_requested")
    if request is None:
        detail = "no cancellation request exists, and none can be made any more"
        return reject(state, msg, "no_cancel_request", detail)
    if request.status != "open":
        return reject(state, msg, "request_not_open", f"the request is {request.status}")
    step = Step(state).stop_timers(CANCEL_TIMER)
    if isinstance(msg, SellerCancelRejected):
        step = step.update(cancel_request=request.model_copy(update={"status": "rejected"}))
        data = CancellationRejectedData(by="seller", reason=msg.reason)
        return step.emit("cancellation.rejected", data, msg.occurred_at, msg.message_id)
    step = step.update(cancel_request=request.model_copy(update={"status": "accepted"}))
    step = step.emit(
        "cancellation.accepted",
        CancellationAcceptedData(by="seller"),
        msg.occurred_at,
        msg.message_id,
    )
    return cancel_order(step, "buyer", request.reason, msg.occurred_at, msg.message_id)


def reject_by_system(step: Step, reason: str, at: datetime, cause: str) -> Step:
    """An open request loses when the order ships."""
    request = step.state.cancel_request
    if request is None or request.status != "open":
        return step
    step = step.update(cancel_request=request.model_copy(update={"status": "rejected"}))
    step = step.stop_timers(CANCEL_TIMER)
    return step.emit(
        "cancellation.rejected", CancellationRejectedData(by="system", reason=reason), at, cause
    )


def seller_cancel(state: OrderState, msg: SellerOrderCancelled) -> Step:
    """Rule 4: only before ready-to-ship; counts against the shop."""
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is already cancelled")
    if state.ready_to_ship_at is not None or state.shipped_at is not None:
        detail = "a seller may cancel only before the order is ready to ship"
        return reject(state, msg, "already_ready_to_ship", detail)
    return cancel_order(Step(state), "seller", msg.reason, msg.occurred_at, msg.message_id)


def auto_accept(step: Step, deadline: Deadline, cause: str) -> Step:
    request = step.state.cancel_request
    if request is None or request.status != "open":  # pragma: no cover - timer was fenced
        return step
    step = step.update(cancel_request=request.model_copy(update={"status": "auto_accepted"}))
    data = CancellationAutoAcceptedData(deadline=deadline.due_at)
    step = step.emit("cancellation.auto_accepted", data, deadline.due_at, cause)
    return cancel_order(step, "buyer", request.reason, deadline.due_at, cause)


def expire_unpaid(step: Step, deadline: Deadline, cause: str) -> Step:
    """Rule 5: the platform cancels an unpaid prepaid order."""
    state = step.state
    if state.paid_at is not None or state.cancellation is not None:  # pragma: no cover
        return step
    return cancel_order(step, "platform", UNPAID_REASON, deadline.due_at, cause)
